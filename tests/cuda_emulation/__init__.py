"""Run the CuPy backend's CUDA C kernels on the CPU, for tests on machines without a GPU.

:func:`build` compiles every kernel file (or those asked for, with test-build
macros defined) with g++ against ``emulator.h`` (each block becomes blockDim
std::threads) into one shared library, with one ``extern "C"`` launcher per
name expression; :func:`install` then makes
``logscan.backends.cupy_backend._module.get_kernel`` return those launchers,
so the backend's own host code (launch configuration, workspace carving,
recursion, phase order) drives the same kernels on NumPy buffers.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def compiler() -> str | None:
    return shutil.which("g++")


# What the emulation needs of the compiler (C++20, _Float16, threads), and nothing of the kernels.
_PROBE = """#include <thread>
#include <span>
_Float16 half_of(float x) { return static_cast<_Float16>(x); }
int main() { std::thread t([] {}); t.join(); return static_cast<float>(half_of(1.0f)) == 1.0f ? 0 : 1; }
"""


def toolchain_problem() -> str | None:
    """None when g++ can build the emulation (a trivial program using what it needs compiles and runs),
    else why not. Only this decides a skip: a kernel file that fails to build is a test failure."""
    if compiler() is None:
        return "g++ is not on PATH"
    with tempfile.TemporaryDirectory() as directory:
        program, binary = Path(directory) / "probe.cpp", Path(directory) / "probe"
        program.write_text(_PROBE)
        built = subprocess.run([compiler(), "-std=c++20", "-pthread", str(program), "-o", str(binary)],
                               capture_output=True, text=True, check=False)
        if built.returncode != 0:
            return f"g++ cannot build a C++20 program with _Float16 and std::thread: {built.stderr[-500:]}"
        if subprocess.run([str(binary)], check=False).returncode != 0:
            return "a C++20 program built by g++ did not run correctly"
    return None


def _program(module, files, defines):
    names = [name for file in files for name in module.name_expressions(file)]
    lines = [f"#define {name} 1" for name in defines] + ['#include "emulator.h"']
    lines += [f'#include "{module.KERNEL_DIR / file}"' for file in files]
    for k, name in enumerate(names):
        lines.append(f'extern "C" void emulated_{k}(unsigned grid, unsigned block, void** args) '
                     f'{{ launch(&{name}, grid, block, args); }}')
    return "\n".join(lines) + "\n", names


def build(module, directory: Path | None = None, *, defines=(), files=None):
    """Compile the emulated kernels; returns {name expression: launcher}.

    Parameters
    ----------
    module
        The backend's kernel catalog, ``logscan.backends.cupy_backend._module``.
    directory : Path, optional
        Where the compiled library is cached (a ``logscan-emulated`` folder in it); the system's
        temporary folder by default.
    defines : sequence of str, optional
        Preprocessor macros defined (to 1) before every kernel file, e.g. a kernel's test-build
        switch. They are lines of the generated program, so they enter the cache digest.
    files : sequence of str, optional
        The kernel files to build (default: all of ``module.files()``); fewer files build faster.
    """
    text, names = _program(module, module.files() if files is None else tuple(files), tuple(defines))
    sources = text + "".join((module.KERNEL_DIR / f).read_text() for f in sorted(
        p.name for p in module.KERNEL_DIR.iterdir())) + (HERE / "emulator.h").read_text()
    digest = hashlib.sha256(sources.encode()).hexdigest()[:16]
    directory = Path(directory or tempfile.gettempdir()) / "logscan-emulated"
    directory.mkdir(parents=True, exist_ok=True)
    library = directory / f"kernels-{digest}.so"
    if not library.exists():
        program = directory / f"kernels-{digest}.cpp"
        program.write_text(text)
        built = subprocess.run([compiler(), "-std=c++20", "-O1", "-pthread", "-shared", "-fPIC", "-w",
                                "-x", "c++", f"-I{HERE}", str(program), "-o", str(library) + ".tmp"],
                               capture_output=True, text=True, check=False)
        if built.returncode != 0:
            raise RuntimeError(f"the emulated kernels do not compile ({program}):\n{built.stderr[-4000:]}")
        Path(str(library) + ".tmp").rename(library)
    lib = ctypes.CDLL(str(library))
    return {name: _Launcher(getattr(lib, f"emulated_{k}")) for k, name in enumerate(names)}


_CTYPES = {np.dtype(np.int64): ctypes.c_int64, np.dtype(np.uint64): ctypes.c_uint64,
           np.dtype(np.int32): ctypes.c_int32, np.dtype(np.float32): ctypes.c_float,
           np.dtype(np.float64): ctypes.c_double}


class _Launcher:
    """Called like a ``cupy.RawKernel``: ``kernel(grid, block, args, shared_mem=...)``."""

    def __init__(self, function):
        self.function = function
        self.function.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p)]
        self.launches = 0

    def __call__(self, grid, block, args, *, shared_mem=0):
        if shared_mem > (1 << 16):
            raise ValueError(f"emulated launch asks for {shared_mem} bytes of shared memory")
        for arg in args:  # the backend must pass explicit NumPy scalars, as CuPy needs
            if not isinstance(arg, np.generic):
                raise TypeError(f"kernel argument {arg!r} is not a NumPy scalar")
        values = [_CTYPES[arg.dtype](arg) for arg in args]
        pointers = (ctypes.c_void_p * len(values))(*[ctypes.addressof(v) for v in values])
        self.launches += 1
        self.function(int(grid[0]), int(block[0]), pointers)


def install(monkeypatch, module, launchers):
    """Route ``module.get_kernel`` to the emulated launchers."""
    def get_kernel(kernel, dtype, *, log, vec=None):
        return launchers[module.template_name(kernel, dtype, log=log, vec=vec)]

    monkeypatch.setattr(module, "get_kernel", get_kernel)
