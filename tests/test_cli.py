"""The ``logscan`` command line: info, bench, the optional train subcommand, and their errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from logscan import _machine, bench, cli, registry
from logscan.registry import BackendSpec

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--shape", "2,64,8"]


def run_cli(capsys, *argv):
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def cli_error(capsys, *argv):
    """The stderr of a command line that argparse rejects (exit status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(list(argv))
    assert exit_info.value.code == 2
    return capsys.readouterr().err


# ---------------------------------------------------------------- info
def test_info_prints_version_backends_cpu_and_gpu(capsys):
    status, out, _ = run_cli(capsys, "info")
    assert status == 0
    assert out.startswith("logscan ")
    assert "CPU: " in out
    assert "GPU" in out
    for name in registry.names():
        assert f"  {name} " in out


def test_info_json_has_every_fact(capsys):
    status, out, _ = run_cli(capsys, "info", "--json")
    assert status == 0
    report = json.loads(out)
    assert set(report) >= {"logscan", "versions", "cpu", "backends", "gpus", "gpu_note"}
    numpy_row = next(row for row in report["backends"] if row["name"] == "numpy")
    assert numpy_row["available"] == "yes"


def test_info_names_the_extra_of_a_missing_backend(capsys, monkeypatch):
    monkeypatch.setitem(registry._SPECS, "fake_gpu", BackendSpec("fake_gpu", "no.such.module", device="cuda",
                                                                 priority=1, requires=("no_such_pkg_x1",),
                                                                 extra="cuda12"))
    _, out, _ = run_cli(capsys, "info")
    assert "needs no_such_pkg_x1 (pip install 'logscan[cuda12]')" in out


def test_gpu_info_never_raises_when_a_gpu_package_breaks(monkeypatch):
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    monkeypatch.setattr(_machine, "_installed", lambda module: module == "cupy")

    def broken():
        raise RuntimeError("no CUDA driver")

    monkeypatch.setattr(_machine, "_gpus_from_cupy", broken)
    gpus, note = _machine.gpu_info()
    assert gpus == []
    assert note == "cupy: RuntimeError: no CUDA driver"


def test_cpu_info_reads_a_model_and_cores():
    info = _machine.cpu_info()
    assert info["model"]
    assert info["logical_cores"] is None or info["logical_cores"] >= 1
    assert isinstance(info["simd"], list)


# ---------------------------------------------------------------- bench
def test_bench_quick_tiny_shape_prints_ratios(capsys):
    status, out, _ = run_cli(capsys, "bench", "--quick", *TINY)
    assert status == 0
    assert "(B, T, D) = (2, 64, 8), float32" in out
    assert "speedup" in out and "copy bw" in out
    loop_rows = [line for line in out.splitlines() if line.split()[1:3] == ["numpy", "loop"]]
    assert len(loop_rows) == 2
    assert all("1.00x" in line for line in loop_rows)
    for method in registry.load("numpy").methods:
        rows = [line for line in out.splitlines() if line.split()[1:3] == ["numpy", method]]
        assert len(rows) == 2, out  # forward and backward
        assert all(line.split()[-4].endswith("x") for line in rows)    # speedup
        assert [line.split()[-3].endswith("x") for line in rows] == [False, True]  # x f+b loops: backward only


@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_bench_other_dtypes(capsys, dtype):
    status, out, _ = run_cli(capsys, "bench", "--quick", "--backend", "numpy", "--method", "sequential",
                             "--dtype", dtype, *TINY)
    assert status == 0
    assert f"(B, T, D) = (2, 64, 8), {dtype}" in out


def test_bench_json_saves_every_row(capsys, tmp_path):
    path = tmp_path / "bench.json"
    status, out, _ = run_cli(capsys, "bench", "--quick", "--backend", "numpy", *TINY, "--shape", "1,33,3",
                             "--json", str(path))
    assert status == 0
    assert str(path) in out
    report = json.loads(path.read_text())
    assert report["meta"]["quick"] is True
    assert [s["shape"] for s in report["shapes"]] == [[2, 64, 8], [1, 33, 3]]
    methods = registry.load("numpy").methods
    for shape in report["shapes"]:
        assert len(shape["rows"]) == 2 * (1 + len(methods))
        for row in shape["rows"]:
            assert row["seconds"] > 0
            assert row["max_abs_diff"] < 1e-4
            assert row["copy_fraction"] > 0


def test_bench_quick_skips_slow_rows_and_says_so(capsys, monkeypatch):
    monkeypatch.setattr(bench, "SLOW_SECONDS", 0.0)
    status, out, _ = run_cli(capsys, "bench", "--quick", "--backend", "numpy", *TINY)
    assert status == 0
    skipped = [line for line in out.splitlines() if "skipped (slow" in line]
    assert len(skipped) == 2 * len(registry.load("numpy").methods)
    assert "numpy loop" in out  # the baseline is always timed


def test_bench_lists_an_unavailable_backend_as_skipped(capsys, monkeypatch):
    monkeypatch.setitem(registry._SPECS, "fake_cpu", BackendSpec("fake_cpu", "no.such.module", device="cpu",
                                                                 priority=-1, requires=("no_such_pkg_x2",),
                                                                 extra="fake"))
    status, out, _ = run_cli(capsys, "bench", "--quick", "--backend", "fake_cpu", *TINY)
    assert status == 0
    assert "backend fake_cpu: skipped (not available here" in out


def test_timer_synchronizes_and_the_rounds_keep_the_best():
    ticks = iter([0.0, 5.0, 10.0, 12.0, 20.0, 23.0, 30.0, 31.0])
    synced = []
    timer = bench.Timer(sync=lambda: synced.append(1), clock=lambda: next(ticks))
    assert bench.timed_rounds([(timer, lambda: "done")], repeats=3) == [2.0]
    assert timer.once(lambda: "done") == (1.0, "done")
    assert len(synced) == 2 * 4  # before and after every call


def test_bench_takes_extra_rows_with_their_own_timer():
    """The extension point for GPU rows: extra candidate sources, timed with a synchronizing timer."""
    synced = []

    def device_rows(problem):
        out = np.empty(problem.shape, problem.dtype)
        yield bench.Candidate("forward", "fake_device", "sequential",
                              lambda: bench.numpy_loop_forward(problem.log_a, problem.log_b, out),
                              timer=bench.Timer(sync=lambda: synced.append(1)))

    config = bench.Config(shapes=((2, 16, 4),), backends=["numpy"], methods=["sequential"], quick=True)
    report = bench.run(config, echo=lambda line: None, extra_sources=[device_rows])
    rows = {(row["op"], row["backend"]): row for row in report["shapes"][0]["rows"]}
    assert rows[("forward", "fake_device")]["max_abs_diff"] == 0.0
    assert rows[("forward", "fake_device")]["speedup"] > 0
    assert synced


def test_rows_are_timed_in_interleaved_rounds_and_compared_before_the_next_row_runs():
    """After one untimed call each, every round calls each row once, in turn, and a row keeps its best
    call. Rows sharing one out= buffer are each compared with the loop right after their untimed call,
    before the next row overwrites the buffer."""
    calls, now = [], [0.0]
    durations = {"good": iter([3.0, 1.0, 2.0]), "bad": iter([4.0, 6.0, 5.0])}  # seconds, round by round
    clock = bench.Timer(clock=lambda: now[0])

    def rows(problem):
        shared = np.empty(problem.shape, problem.dtype)
        for name, scale in (("good", 1.0), ("bad", 2.0)):
            def call(name=name, scale=scale):
                calls.append(name)
                if len(calls) > 2:  # the first two are the untimed calls
                    now[0] += next(durations[name])
                bench.numpy_loop_forward(problem.log_a, problem.log_b, shared)
                np.multiply(shared, scale, out=shared)
                return shared
            yield bench.Candidate("forward", "fake", name, call, timer=clock)

    result = bench.measure_shape((2, 16, 4), "float64", [rows], repeats=3)
    assert calls == ["good", "bad"] + ["good", "bad"] * 3
    by_method = {row.method: row for row in result.rows if row.backend == "fake"}
    assert by_method["good"].seconds == 1.0 and by_method["bad"].seconds == 4.0
    assert by_method["good"].max_abs_diff == 0.0
    assert by_method["bad"].max_abs_diff > 0.0


def test_backward_rows_report_their_speedup_over_both_numpy_loops():
    config = bench.Config(shapes=((2, 16, 4),), backends=["numpy"], methods=["sequential"], quick=True)
    lines = []
    report = bench.run(config, echo=lines.append)
    rows = {(row["op"], row["backend"]): row for row in report["shapes"][0]["rows"]}
    loops = rows[("forward", bench.LOOP)]["seconds"] + rows[("backward", bench.LOOP)]["seconds"]
    ours = rows[("backward", "numpy")]
    assert ours["speedup_loops"] == pytest.approx(loops / ours["seconds"])
    assert rows[("forward", "numpy")]["speedup_loops"] is None
    assert rows[("backward", bench.LOOP)]["speedup_loops"] is None
    assert any("x f+b loops" in line for line in lines)


@pytest.mark.parametrize(("argv", "message"), [
    (["bench", "--backend", "nope"], "unknown backend 'nope'; registered backends:"),
    (["bench", "--shape", "2,64"], "shape must be three positive integers"),
    (["bench", "--shape", "2,0,8"], "shape must be three positive integers"),
    (["bench", "--shape", "a,b,c"], "shape must be three positive integers"),
    (["bench", "--dtype", "int8"], "invalid choice: 'int8'"),
    (["bench", "--backend", "numpy", "--method", "nope", *TINY], "unknown method 'nope'"),
    (["bench", "--repeats", "0", *TINY], "repeats must be at least 1"),
    (["bench", "--json", "/no/such/folder/x.json", *TINY], "folder /no/such/folder does not exist"),
    (["nope"], "invalid choice: 'nope'"),
], ids=["unknown-backend", "two-dims", "zero-dim", "not-ints", "dtype", "unknown-method", "repeats", "json-folder",
        "unknown-command"])
def test_bad_arguments_are_clear_errors(capsys, argv, message):
    assert message in cli_error(capsys, *argv)


def test_bench_refuses_a_gpu_backend_for_now(capsys, monkeypatch):
    monkeypatch.setitem(registry._SPECS, "fake_cuda", BackendSpec("fake_cuda", "no.such.module", device="cuda",
                                                                  priority=1))
    assert "measures CPU backends" in cli_error(capsys, "bench", "--backend", "fake_cuda", *TINY)


def test_no_command_prints_help(capsys):
    status, out, _ = run_cli(capsys)
    assert status == 2
    assert "bench" in out and "info" in out


# ---------------------------------------------------------------- train (optional)
def test_train_is_offered_only_when_its_module_exists(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "TRAIN_MODULE", "logscan_fake_train_absent.train")
    assert "train" not in cli.build_parser().format_help()

    (tmp_path / "logscan_fake_train.py").write_text(
        '"""Train a fake model."""\n'
        "def add_arguments(parser):\n"
        "    parser.add_argument('--steps', type=int, default=1)\n"
        "def run(args):\n"
        "    print('trained', args.steps)\n"
        "    return 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "TRAIN_MODULE", "logscan_fake_train")
    status, out, _ = run_cli(capsys, "train", "--steps", "3")
    assert status == 0
    assert "trained 3" in out


# ---------------------------------------------------------------- python -m logscan
def test_python_dash_m_runs_the_command():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "logscan", "--version"], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("logscan ")
