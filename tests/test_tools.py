"""The benchmark scripts under tools/ still run against the current package (tiny shapes; they are not timed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
    refused = subprocess.run(["bash", str(script), "--charm=x"], capture_output=True, text=True, check=False)
    assert refused.returncode == 2 and "unknown argument --charm=x" in refused.stderr
