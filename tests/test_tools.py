"""The benchmark scripts under tools/ still run against the current package (tiny shapes; they are not timed)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run_tool(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False, cwd=ROOT)


def test_bench_nn_prints_a_row_per_cell():
    done = run_tool(ROOT / "tools" / "bench_nn.py", "--shape", 2, 8, 4, 4, "--repeat", 1)
    assert done.returncode == 0, done.stderr
    for cell in ("mingru", "minlstm"):
        assert re.search(rf"^  {cell} +logscan\.nn +fwd\+bwd +[0-9.]+ ms", done.stdout, re.M), done.stdout


def test_gpu_check_script_parses_its_options():
    """tools/gpu_check.sh only runs on a GPU machine; here its syntax, its help and its refusal of a bad option."""
    script = ROOT / "tools" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    shown = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, check=False)
    assert shown.returncode == 0 and "--charlm=FILE" in shown.stdout and "--sanitize" in shown.stdout
    assert "--budget=S" in shown.stdout and "--no-bench, --no-tests" in shown.stdout
    refused = subprocess.run(["bash", str(script), "--charm=x"], capture_output=True, text=True, check=False)
    assert refused.returncode == 2 and "unknown argument --charm=x" in refused.stderr
    refused = subprocess.run(["bash", str(script), "--budget=9m"], capture_output=True, text=True, check=False)
    assert refused.returncode == 2 and "--budget takes whole seconds, got '9m'" in refused.stderr


def test_gpu_bench_saves_its_rows_shape_by_shape_under_the_simulator(tmp_path):
    """A dry run of tools/gpu_bench.py on the CUDA simulator: the table's rows and the JSON the summary reads."""
    saved = tmp_path / "bench.json"
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_bench.py"), "--shape", "1x9x2", "--shape",
                           "2x5x1", "--backend", "numba_cuda", "--method", "sequential", "--reps", "1",
                           "--json", str(saved)], capture_output=True, text=True, timeout=300, check=False,
                          cwd=ROOT, env=dict(env, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr
    for shape in ("1x9x2", "2x5x1"):
        for direction in ("forward", "backward"):
            assert re.search(rf"^numba_cuda +sequential\* +{direction} +{shape} ", done.stdout, re.M), done.stdout
    rows = json.loads(saved.read_text())["rows"]
    assert [(r["shape"], r["direction"]) for r in rows] == [
        ([1, 9, 2], "forward"), ([1, 9, 2], "backward"), ([2, 5, 1], "forward"), ([2, 5, 1], "backward")]


def test_fit_vmath_polynomials_reproduces_the_exp_coefficients_of_the_kernels():
    """tools/fit_vmath_polynomials.py gives the float32 exp polynomial of _vmath, and its error stays at 3.6e-9."""
    from logscan.backends.numba_cpu._vmath import _EXP6_32

    done = run_tool(ROOT / "tools" / "fit_vmath_polynomials.py")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    at = next(k for k, line in enumerate(lines) if line.startswith("exp: "))
    worst = float(re.search(r"max relative error ([0-9.e+-]+)", lines[at]).group(1))
    assert worst < 4e-9, lines[at]
    coefficients = np.array([float(c) for c in lines[at + 1].strip(" ()").split(",")])
    np.testing.assert_allclose(coefficients, np.array(_EXP6_32, np.float64), rtol=1e-6)
    assert any(line.startswith("log1p: ") for line in lines), done.stdout
