"""Importing logscan is cheap and light; every available backend loads and exposes the backend interface."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import logscan
from logscan import registry

ROOT = Path(logscan.__file__).resolve().parent.parent
HEAVY = ("numba", "llvmlite", "cupy", "cuda", "numba_cuda", "torch", "jax", "jaxlib", "tensorflow", "pycuda")

PROBE = r"""
import json, sys, time
import numpy  # a hard dependency: its own import time is not ours
start = time.perf_counter()
import logscan
elapsed = time.perf_counter() - start
after_import = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
logscan.available_backends()
after_available = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
logscan.scan(numpy.zeros((2, 5)), numpy.zeros((2, 5)), backend="numpy")
after_numpy_scan = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print(json.dumps(dict(elapsed=elapsed, after_import=after_import, after_available=after_available,
                      after_numpy_scan=after_numpy_scan)))
"""


def _probe():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    code = f"HEAVY = {HEAVY!r}\n" + PROBE
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=60, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_loads_no_heavy_package_and_is_fast():
    runs = [_probe() for _ in range(3)]
    for run in runs:
        assert run["after_import"] == [], f"import logscan imported {run['after_import']}"
        assert run["after_available"] == [], f"available_backends() imported {run['after_available']}"
        assert run["after_numpy_scan"] == [], f"a numpy-backend scan imported {run['after_numpy_scan']}"
    best = min(run["elapsed"] for run in runs)  # the best of three: the machine is shared
    assert best < 0.2, f"import logscan took {best:.3f} s (best of 3), expected < 0.2 s"


def test_public_names():
    for name in ("scan", "scan_backward", "linear_scan", "linear_scan_backward", "logcumsumexp",
                 "available_backends", "__version__"):
        assert hasattr(logscan, name), name
    assert set(logscan.__all__) <= set(dir(logscan))
    assert isinstance(logscan.__version__, str) and logscan.__version__


def test_available_backends_are_registered_and_numpy_is_always_there():
    names = logscan.available_backends()
    assert "numpy" in names
    assert set(names) <= set(registry.names())
    priorities = [registry.spec(n).priority for n in names]
    assert priorities == sorted(priorities, reverse=True), "available_backends() must list the fastest first"


def test_every_available_cpu_backend_loads_and_exposes_the_interface():
    for name in logscan.available_backends():
        if registry.spec(name).device != "cpu":
            continue
        module = registry.load(name)
        assert set(registry.BASE_METHODS) <= set(module.methods), f"{name} lacks a textbook method"
        for op in registry.OPS:
            assert callable(getattr(module, op)), f"{name}.{op}"
            for dtype in (np.float32, np.float64):
                for outer, T, inner in [(1, 1, 1), (4, 1000, 8), (1, 65536, 1), (0, 0, 0)]:
                    method = module.choose_method(op, np.dtype(dtype), outer, T, inner)
                    assert method in module.methods, f"{name}.choose_method gave {method!r}"
                    for m in module.methods:
                        nbytes = module.workspace_size(op, np.dtype(dtype), outer, T, inner, m)
                        assert isinstance(nbytes, (int, np.integer)) and nbytes >= 0
        assert callable(module.as_array)


def test_test_suite_backends(request):
    """The suite covers what LOGSCAN_TEST_BACKENDS asks, or every available CPU backend."""
    from tests.conftest import BACKENDS

    wanted = os.environ.get("LOGSCAN_TEST_BACKENDS", "").strip()
    if wanted:
        assert BACKENDS == [w.strip() for w in wanted.split(",") if w.strip()]
    else:
        assert BACKENDS == [n for n in logscan.available_backends() if registry.spec(n).device == "cpu"]
