"""Every numba_cuda kernel compiles to PTX for sm_80 and sm_90, with no GPU.

``numba.cuda.compile_ptx`` types and compiles each kernel (every space,
dtype and compile-time layout the backend launches, the warp-shuffle block
scan included, which the simulator runs only with the shuffle the tests emulate) through NVVM. It also checks
that float32 kernels do no float64 arithmetic (an untyped Python float
constant would silently promote them).
"""

from __future__ import annotations

import functools
import os
import re

import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
    pytest.skip("compile_ptx needs the real CUDA target, not the simulator", allow_module_level=True)
pytest.importorskip("numba_cuda")

from numba import cuda  # noqa: E402

from logscan.backends.numba_cuda import _kernels  # noqa: E402

CASES = _kernels.ptx_cases()
CCS = [(8, 0), (9, 0)]


@functools.lru_cache(maxsize=1)
def _nvvm_problem():
    def probe(x):
        x[0] = 1.0

    try:
        cuda.compile_ptx(probe, "void(float32[:])", cc=(8, 0))
    except Exception as error:  # noqa: BLE001  (no NVVM / toolkit: say why and skip)
        return f"{type(error).__name__}: {error}".splitlines()[0]
    return None


@pytest.mark.parametrize("cc", CCS, ids=lambda cc: f"sm_{cc[0]}{cc[1]}")
@pytest.mark.parametrize(("label", "pyfunc", "signature"), CASES, ids=[c[0] for c in CASES])
def test_kernel_compiles_to_ptx(label, pyfunc, signature, cc):
    problem = _nvvm_problem()
    if problem:
        pytest.skip(f"NVVM not available (pip install 'numba-cuda[cu13]'): {problem}")
    ptx, _resty = cuda.compile_ptx(pyfunc, signature, cc=cc)
    assert f".target sm_{cc[0]}{cc[1]}" in ptx
    assert ".entry" in ptx
    if "-float32" in label and "copy3" not in label:
        f64 = [line.strip() for line in ptx.splitlines() if re.search(r"\.f64\b", line)]
        assert not f64, f"float32 kernel {label} does float64 arithmetic: {f64[:5]}"
    if label.startswith("chunked") and label.endswith("True"):
        assert "shfl.sync.up" in ptx


def test_every_kernel_has_a_case():
    names = {label.split("-")[0] for label, _, _ in CASES}
    assert set(_kernels._FACTORIES) <= names
    assert {"copy3", "fill3"} <= names
    assert any(label.startswith("chunked_scan") and label.endswith("True") for label, _, _ in CASES)
