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
from xml.etree import ElementTree

import pytest

ROOT = Path(__file__).resolve().parent.parent
# tests/test_numba_cuda.py's cases (parametrizations included) when this check was written: fewer means some
# stopped being collected.
MINIMUM_CASES = 222


def test_numba_cuda_kernels_under_the_simulator(tmp_path):
    pytest.importorskip("numba_cuda")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    report = tmp_path / "simulator.xml"
    command = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "test_numba_cuda.py"), "-q",
               "-p", "no:cacheprovider", "-o", "addopts=", "--import-mode=importlib", f"--junitxml={report}"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, f"simulator tests failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    # An exit status of 0 also means "everything skipped": count what ran.
    counts = junit_counts(report)
    assert counts["tests"] >= MINIMUM_CASES and counts["skipped"] == 0 and counts["passed"] == counts["tests"], (
        f"simulator suite: {counts}, expected at least {MINIMUM_CASES} cases, all passed\n{result.stdout[-3000:]}")


def junit_counts(path):
    """tests/passed/skipped/failed/errors of a pytest JUnit XML report."""
    suite = ElementTree.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "skipped", "failures", "errors")}
    counts["passed"] = counts["tests"] - counts["skipped"] - counts["failures"] - counts["errors"]
    return counts
