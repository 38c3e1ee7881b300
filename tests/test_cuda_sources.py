"""The CUDA C sources of the CuPy backend compile, with no GPU needed.

* every ``kernels/*.cu`` file compiles with ``nvcc`` for sm_80 and sm_90 with
  warnings as errors, instantiating exactly the templates the Python side
  asks for (``_module.name_expressions``);
* the same files compile with NVRTC, the compiler CuPy uses, from the very
  text and options ``cupy.RawModule`` gets, and every name expression
  resolves to a kernel (skipped where ``cuda.bindings`` or libnvrtc is
  missing);
* the kernels' template names and parameters match the Python catalog.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import logscan
from logscan.backends.cupy_backend import _module

FILES = _module.files()
ARCHS = ("80", "90")


def test_catalog_lists_every_kernel_file():
    on_disk = sorted(p.name for p in _module.KERNEL_DIR.glob("*.cu"))
    assert sorted(FILES) == on_disk


def test_every_kernel_source_is_package_data():
    """A non-editable install ships only what pyproject's package-data globs name: every .cu/.cuh must match."""
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml")
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["logscan"]
    package = Path(logscan.__file__).parent
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    sources = {path for path in _module.KERNEL_DIR.iterdir() if path.suffix not in (".py", ".pyc") and path.is_file()}
    assert sources, "no kernel sources found"
    assert sources <= shipped, f"not shipped: {sorted(p.name for p in sources - shipped)}"


_KERNEL = re.compile(r"template\s*<([^>]*)>\s*__global__\s+void\s+(\w+)\s*\(")
_PLAIN_KERNEL = re.compile(r"^__global__\s+void\s+(\w+)\s*\(", re.MULTILINE)


@pytest.mark.parametrize("file", FILES)
def test_name_expressions_match_the_kernel_templates(file):
    text = (_module.KERNEL_DIR / file).read_text()
    declared = {name: [p.strip() for p in params.split(",")] for params, name in _KERNEL.findall(text)}
    plain = set(_PLAIN_KERNEL.findall(text)) - set(declared)
    catalog = {name: info for name, info in _module.KERNELS.items() if info.file == file}
    assert set(declared) | plain == set(catalog), "kernels in the file and in _module.KERNELS differ"
    assert plain == {name for name, info in catalog.items() if not info.templated}
    for name, params in declared.items():
        expected = ["typename S", "bool LOG"] + (["int VEC"] if catalog[name].vectorized else [])
        assert params == expected, name
    for expression in _module.name_expressions(file):
        if expression in plain:
            continue
        name, args = re.fullmatch(r"(\w+)<(.*)>", expression).groups()
        assert name in declared
        assert len(args.split(", ")) == len(declared[name])


def test_template_names_spell_the_dtypes():
    assert _module.template_name("logscan_per_channel_forward", "float32", log=True, vec=4) == \
        "logscan_per_channel_forward<float, true, 4>"
    assert _module.template_name("logscan_blelloch_scan", "float64", log=False) == \
        "logscan_blelloch_scan<double, false>"
    assert _module.template_name("logscan_chunk_carry_scan", "float16", log=True) == \
        "logscan_chunk_carry_scan<logscan::half_t, true>"
    assert _module.template_name("logscan_per_channel_backward", "bfloat16", log=False, vec=8) == \
        "logscan_per_channel_backward<logscan::bfloat16_t, false, 8>"  # by name: no ml_dtypes needed
    assert "logscan_lookback_forward<logscan::bfloat16_t, true>" in _module.name_expressions("lookback.cu")
    for half in ("float16", "bfloat16"):
        with pytest.raises(TypeError, match=f"no {half} version"):
            _module.template_name("logscan_blelloch_scan", half, log=True)
    with pytest.raises(ValueError, match="vector width"):
        _module.template_name("logscan_per_channel_forward", "float64", log=True, vec=4)


def test_launch_constants_match_the_kernels():
    from logscan.backends import cupy_backend as backend

    text = (_module.KERNEL_DIR / "lookback.cu").read_text()
    constants = {name: int(value) for name, value in re.findall(r"const int (LOOKBACK_\w+) = (\d+);", text)}
    assert 32 * constants["LOOKBACK_WARPS"] == backend.LOOKBACK_BLOCK
    assert constants["LOOKBACK_WARPS"] * constants["LOOKBACK_STEPS"] == backend.LOOKBACK_TILE_STEPS
    assert backend.CARRY_BLOCK % 32 == 0 and backend.CARRY_BLOCK <= 1024
    assert backend.BLELLOCH_BLOCK & (backend.BLELLOCH_BLOCK - 1) == 0  # the Blelloch tile is a power of two


def test_source_expands_local_includes_once():
    text = _module.source("chunked.cu")
    assert '#include "' not in text
    assert text.count("struct half_t {") == 1 and text.count("struct bfloat16_t {") == 1


# ------------------------------------------------------------ nvcc
def _instantiation_file(tmp_path, file):
    """A translation unit that includes `file` and takes the address of every requested instantiation."""
    names = ",\n    ".join(f"(void*)&{name}" for name in _module.name_expressions(file))
    unit = tmp_path / f"instantiate_{file}"
    unit.write_text(f'#include "{_module.KERNEL_DIR / file}"\n'
                    f"static void* const logscan_kernels[] = {{\n    {names}\n}};\n"
                    "void* logscan_kernel(int k) { return logscan_kernels[k]; }\n")
    return unit


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("file", FILES)
def test_compiles_with_nvcc_for_sm80_and_sm90_without_warnings(tmp_path, file):
    unit = _instantiation_file(tmp_path, file)
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in ARCHS]
    command = ["nvcc", *gencode, "-std=c++17", "--Werror", "all-warnings",
               "-Xcompiler", "-Wall,-Wextra,-Werror", "-c", str(unit), "-o", str(tmp_path / "out.o")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------ NVRTC
def _nvrtc():
    try:
        from cuda.bindings import nvrtc

        nvrtc.nvrtcVersion()
    except Exception as error:  # not installed, or libnvrtc not found
        pytest.skip(f"NVRTC is not usable here ({type(error).__name__}: {error}); "
                    "pip install cuda-bindings nvidia-cuda-nvrtc to run this check")
    return nvrtc


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("file", FILES)
def test_compiles_with_nvrtc_as_cupy_would(file, arch):
    nvrtc = _nvrtc()
    error, program = nvrtc.nvrtcCreateProgram(_module.source(file).encode(), file.encode(), 0, [], [])
    assert error == nvrtc.nvrtcResult.NVRTC_SUCCESS
    try:
        names = _module.name_expressions(file)
        for name in names:
            (error,) = nvrtc.nvrtcAddNameExpression(program, name.encode())
            assert error == nvrtc.nvrtcResult.NVRTC_SUCCESS
        options = [o.encode() for o in _module.COMPILE_OPTIONS] + [f"--gpu-architecture=sm_{arch}".encode()]
        (result,) = nvrtc.nvrtcCompileProgram(program, len(options), options)
        _, size = nvrtc.nvrtcGetProgramLogSize(program)
        log = b" " * size
        nvrtc.nvrtcGetProgramLog(program, log)
        log = log.decode(errors="replace").strip("\x00 \n")
        assert result == nvrtc.nvrtcResult.NVRTC_SUCCESS, log
        assert "warning" not in log, log
        for name in names:
            error, lowered = nvrtc.nvrtcGetLoweredName(program, name.encode())
            assert error == nvrtc.nvrtcResult.NVRTC_SUCCESS and lowered, name
    finally:
        nvrtc.nvrtcDestroyProgram(program)


class _FakeRawModule:
    """Records what ``cupy.RawModule`` would be asked to compile; hands out one function per name."""

    built = []

    def __init__(self, *, code, options, name_expressions):
        self.code, self.options, self.names = code, options, tuple(name_expressions)
        _FakeRawModule.built.append(self)

    def get_function(self, name):
        assert name in self.names, f"{name} was not among the name expressions compiled"
        return ("function", name, id(self))


def test_get_kernel_compiles_each_file_once_per_device(monkeypatch):
    """get_kernel: RawModule over the expanded source with every name expression of the file, once per
    (file, device); each instantiation fetched once per device (a stand-in for CuPy, no GPU needed)."""
    import types  # noqa: PLC0415

    device = [0]
    fake = types.ModuleType("cupy")
    fake.RawModule = _FakeRawModule
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDevice=lambda: device[0]))
    monkeypatch.setitem(__import__("sys").modules, "cupy", fake)
    monkeypatch.setattr(_module, "_modules", {})
    monkeypatch.setattr(_module, "_functions", {})
    monkeypatch.setattr(_FakeRawModule, "built", [])

    kernel = "logscan_per_channel_forward"
    file = _module.KERNELS[kernel].file
    first = _module.get_kernel(kernel, "float32", log=True, vec=4)
    assert _module.get_kernel(kernel, "float32", log=True, vec=4) is first
    _module.get_kernel(kernel, "float64", log=False, vec=1)  # another instantiation of the file: no new compile
    assert len(_FakeRawModule.built) == 1
    built = _FakeRawModule.built[0]
    assert built.code == _module.source(file) and built.options == _module.COMPILE_OPTIONS
    assert built.names == _module.name_expressions(file)
    device[0] = 1  # another GPU: its own module
    assert _module.get_kernel(kernel, "float32", log=True, vec=4) is not first
    assert len(_FakeRawModule.built) == 2
