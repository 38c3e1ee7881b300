"""The documentation: the Sphinx site builds with warnings as errors, and its examples run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def test_sphinx_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx", reason="sphinx is installed by the test extra")
    pytest.importorskip("numpydoc", reason="numpydoc is installed by the test extra")
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
                          capture_output=True, text=True, env=_env(), timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    for page in ("index", "recurrence", "backward", "methods", "capi", "numba_cuda", "cupy", "nn", "cli", "api"):
        assert (tmp_path / "html" / f"{page}.html").is_file()
    api = (tmp_path / "html" / "api.html").read_text(encoding="utf-8")
    for name in ("logscan.scan", "logscan.scan_backward", "logscan.capi.log_scan", "logscan.reference.scan",
                 "logscan.reference.mingru", "logscan.nn.mingru_forward", "logscan.nn.minlstm_backward",
                 "logscan.nn.AdamW"):
        assert f'id="{name}"' in api, name


@pytest.mark.parametrize("example", sorted((DOCS / "examples").glob("*.py")), ids=lambda p: p.stem)
def test_documented_example_runs(example):
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, env=_env(), timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
