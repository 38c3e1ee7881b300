"""The benchmark scripts under tools/ still run against the current package (tiny shapes; they are not timed)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

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
    assert "--no-bench --no-tests --sanitize --budget=S" in shown.stdout  # the sanitizers get a call of their own
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
    assert not saved.with_name("bench.json.partial").exists()  # written aside, then renamed over bench.json
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


def load_tool(name):
    """A script of tools/ as a module (tools/ is no package)."""
    spec = importlib.util.spec_from_file_location(f"_tool_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class FakeCupy:
    """Enough of CuPy, on NumPy, for the ceiling runners of tools/compare_peers.py; records the bytes copied."""

    uint8 = np.uint8
    asarray = staticmethod(np.asarray)
    empty_like = staticmethod(np.empty_like)
    cumsum = staticmethod(np.cumsum)

    def __init__(self):
        self.copied = []
        self.cuda = SimpleNamespace(get_current_stream=lambda: SimpleNamespace(synchronize=lambda: None))

    def empty(self, nbytes, dtype):
        def copy_from_device_async(src, size, stream):
            assert src.nbytes == size <= nbytes
            self.copied.append(size)

        return SimpleNamespace(nbytes=nbytes, data=SimpleNamespace(nbytes=nbytes,
                                                                   copy_from_device_async=copy_from_device_async))

    zeros = empty


def test_compare_peers_counts_the_bytes_each_runner_moves(monkeypatch):
    """cupy.cumsum moves 2N elements, a scan 3N, and the device copy as many bytes as a scan (CuPy faked)."""
    peers = load_tool("compare_peers")
    cupy = FakeCupy()
    monkeypatch.setattr(peers, "optional", lambda name: cupy if name == "cupy" else importlib.import_module(name))
    monkeypatch.setattr(peers, "logscan_backends", lambda device: {"numpy": ("sequential",)} if device == "cpu" else {})
    runners, _ = peers.build_runners(argparse.Namespace(backends="numpy", methods="auto"), gpu=True)
    traffic = {r.name: r.traffic for r in runners}
    assert traffic["cupy.cumsum (ceiling)"] == 2 and traffic["device copy (ceiling)"] == 3
    assert traffic["logscan numpy:auto"] == traffic["numpy loop"] == 3
    keep = ("logscan numpy:auto", "cupy.cumsum (ceiling)", "device copy (ceiling)")
    shape = (2, 16, 3)
    rows = peers.run_case([r for r in runners if r.name in keep], shape, np.float32,
                          argparse.Namespace(rounds=1, min_time=0.0, max_calls=1), "fixed")
    assert [r["name"] for r in rows] == list(keep)
    n = int(np.prod(shape))
    for row in rows:
        assert row["gb_per_s"] * row["seconds"] * 1e9 == pytest.approx(traffic[row["name"]] * n * 4)
    assert cupy.copied and all(2 * size == 3 * n * 4 for size in cupy.copied)


def test_compare_peers_without_cupy_or_peers_lists_no_gpu_runner(monkeypatch):
    peers = load_tool("compare_peers")
    monkeypatch.setattr(peers, "have", lambda module: module not in ("cupy", "jax", "torch"))
    assert not peers.gpu_present()
    runners, skipped = peers.build_runners(argparse.Namespace(backends="numpy", methods="auto"), gpu=False)
    assert [r.name for r in runners] == ["logscan numpy:auto", "numpy loop"]
    assert all(r.device == "cpu" and r.traffic == 3 for r in runners)
    assert [line.split(":")[0] for line in skipped] == [
        "jax associative_scan", "torch two-pass", "GPU runners (logscan GPU backends, cupy.cumsum, device copy)"]


def bench_row(direction, frac_copy, vs_cumsum, vs_two_pass, target=0.85, auto=True):
    return dict(backend="cupy", method="lookback", auto=auto, direction=direction, shape=[16, 4096, 1024],
                gpu_ms=1.0, call_ms=1.1, GBps=3000.0, frac_copy=frac_copy, vs_cumsum=vs_cumsum,
                vs_two_pass=vs_two_pass, copy_ms=0.9, cumsum_ms=vs_cumsum, two_pass_ms=vs_two_pass, target=target)


NAN = float("nan")


def test_gpu_bench_judges_forward_rows_on_copy_cumsum_and_two_pass_and_backward_on_copy_only():
    bench = load_tool("gpu_bench")
    judged = {
        "forward passes": bench_row("forward", 0.90, 1.2, 3.0),
        "forward below its copy fraction": bench_row("forward", 0.80, 1.2, 3.0),
        "forward slower than cumsum": bench_row("forward", 0.90, 0.9, 3.0),
        "forward slower than the two-pass": bench_row("forward", 0.90, 1.2, 0.9),
        "forward without CuPy": bench_row("forward", 0.90, NAN, NAN),
        "backward slower than cumsum": bench_row("backward", 0.80, 0.4, 1.5, target=0.75),
        "backward below its copy fraction": bench_row("backward", 0.70, 0.4, 1.5, target=0.75),
    }
    assert {case: bench.verdict(row)[0] for case, row in judged.items()} == {
        "forward passes": True, "forward below its copy fraction": False, "forward slower than cumsum": False,
        "forward slower than the two-pass": False, "forward without CuPy": True, "backward slower than cumsum": True,
        "backward below its copy fraction": False}
    assert bench.verdict(judged["forward passes"])[1] == ">= 0.85 of copy, beat cumsum, beat 2pass"
    assert bench.verdict(judged["forward without CuPy"])[1] == ">= 0.85 of copy"
    assert bench.verdict(judged["backward slower than cumsum"])[1] == ">= 0.75 of copy"
    assert bench.verdict(bench_row("forward", 0.9, 1.2, 3.0, auto=False)) is None
    assert bench.verdict(bench_row("forward", 0.9, 1.2, 3.0, target=None)) is None


def test_gpu_bench_summary_prints_the_verdicts_of_a_saved_run(tmp_path):
    """The short table tools/gpu_check.sh prints last, from a bench.json (NaN where CuPy was missing)."""
    saved = tmp_path / "bench.json"
    rows = [bench_row("forward", 0.9, 1.2, NAN), bench_row("backward", 0.8, 0.4, 1.5, target=0.75),
            bench_row("forward", 0.5, 0.5, 0.5, auto=False)]
    saved.write_text(json.dumps({"device": "made up", "rows": rows}))
    done = run_tool(ROOT / "tools" / "gpu_bench.py", "--summary", saved)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout
    assert re.search(r"^cupy +lookback +forward +16x4096x1024 .* nan  PASS \(>= 0.85 of copy, beat cumsum\)$", lines[1])
    assert re.search(r"^cupy +lookback +backward .*  PASS \(>= 0.75 of copy\)$", lines[2])


def test_gpu_check_without_a_gpu_skips_every_stage_and_prints_its_summary(tmp_path):
    """The separate sanitizer call (--no-bench --no-tests --sanitize) on a machine without a GPU: status 0."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", LOGSCAN_GPU_LOGS=str(tmp_path / "logs"), PYTHON=sys.executable)
    done = subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh"), "--no-bench", "--no-tests", "--sanitize",
                           "--budget=60"], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.split("logscan GPU check: summary")[1]
    for line in ("tests       not run (--no-tests) (rc 0)", "bench       not run (--no-bench)",
                 "sanitizer   no GPU here: not run", f"logs: {tmp_path / 'logs'} "):
        assert line in summary, summary
    assert (tmp_path / "logs" / "versions.txt").exists()
