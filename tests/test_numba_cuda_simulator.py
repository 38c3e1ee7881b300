"""Runs tests/test_numba_cuda.py in a subprocess with Numba's CUDA simulator on.

``NUMBA_ENABLE_CUDASIM=1`` must be set before numba is first imported and
would switch every other test in this process to the simulator, so the
simulator tests get a process of their own. CI may instead run them
directly (and deselect this file)::

    NUMBA_ENABLE_CUDASIM=1 PYTHONPATH=. python -m pytest tests/test_numba_cuda.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_numba_cuda_kernels_under_the_simulator():
    pytest.importorskip("numba_cuda")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "test_numba_cuda.py"), "-q",
               "-p", "no:cacheprovider", "-o", "addopts=", "--import-mode=importlib"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, f"simulator tests failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
