"""The numba backend in several threads at once and in forked processes (numba's threading layer).

numba picks its threading layer once per process, at the first parallel
call, so the end-to-end checks run in fresh interpreters.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from logscan.backends.numba_cpu import _threading

ROOT = Path(__file__).resolve().parents[1]

PRELUDE = """
import numpy as np, numba, logscan
from logscan.nn import mingru_backward, mingru_forward, mingru_init

rng = np.random.default_rng(0)
x = rng.standard_normal((4, 4096, 32)).astype(np.float32)
log_a = -np.abs(x) * np.float32(0.01)
params = mingru_init(8, 16, rng=np.random.default_rng(1), dtype=np.float32)
tokens = rng.standard_normal((4, 64, 8)).astype(np.float32)


def work():
    log_h = logscan.scan(log_a, x, axis=1)
    grads = logscan.scan_backward(x, log_a, x, log_h, axis=1)
    h, cache = mingru_forward(params, tokens)  # the fused gate kernels (parallel too)
    param_grads, grad_x, _ = mingru_backward(params, cache, np.ones_like(h))
    return [log_h, *grads[:2], h, grad_x, *param_grads.values()]


def same(got, want):
    return all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
"""


def run_script(body, **env_changes):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    env.update(env_changes)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    script = textwrap.dedent(PRELUDE) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600,
                          check=False, cwd=ROOT)


LAYERS = ["default", "omp", "workqueue"]


def run_on_layer(layer, body):
    """``body`` in a fresh interpreter on numba's ``layer`` (None: skip the test where it cannot load)."""
    prologue = "" if layer == "default" else f"numba.config.THREADING_LAYER = {layer!r}\n"
    done = run_script(prologue + """
try:
    numba.get_num_threads()  # starts the layer
except ValueError as error:  # "No threading layer could be loaded."
    print("LAYER UNAVAILABLE", error)
    raise SystemExit(0)
""" + textwrap.dedent(body))
    if "LAYER UNAVAILABLE" in done.stdout:
        pytest.skip(f"numba's {layer} threading layer does not load here")
    return done


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.parametrize("layer", LAYERS)
def test_a_forked_child_runs_the_kernels_after_its_parent_did(layer):
    """On GNU OpenMP numba terminated such a child at its first parallel call; it now runs the serial twins."""
    done = run_on_layer(layer, """
        import multiprocessing as mp
        want = work()
        def child(queue):
            queue.put(same(work(), want))
        context = mp.get_context("fork")
        queue = context.Queue()
        process = context.Process(target=child, args=(queue,))
        process.start()
        process.join(300)
        print("layer", numba.threading_layer(), "child exit", process.exitcode,
              "same", queue.get(timeout=10) if process.exitcode == 0 else None)
    """)
    assert done.returncode == 0, done.stderr
    assert "child exit 0 same True" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("layer", LAYERS)
def test_threads_may_call_the_kernels_at_once(layer):
    """On workqueue two threads in parallel kernels at once terminated the process; they now take turns."""
    done = run_on_layer(layer, """
        from concurrent.futures import ThreadPoolExecutor
        want = work()
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: all(same(work(), want) for _ in range(3)), range(8)))
        print("layer", numba.threading_layer(), "all same", all(results))
    """)
    assert done.returncode == 0, done.stderr
    assert "all same True" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("method", ["hillis_steele", "blelloch"])
def test_a_first_call_on_a_small_array_may_be_a_tree_method(method):
    """Small calls run the serial twins without asking numba for its thread count; the tree kernels' twins still
    read ``numba.get_thread_id()``, which crashed a process whose threading layer was not loaded yet (without the
    fix: blelloch in 3 of 3 tries, hillis_steele in 2 of 3; the read finds whatever lies in that memory)."""
    done = run_script(f"""
        a, b = log_a[:1, :16, :16], x[:1, :16, :16]
        log_h = logscan.scan(a, b, axis=1, backend="numba", method={method!r})
        grads = logscan.scan_backward(b, a, b, log_h, axis=1, backend="numba", method={method!r})
        want = logscan.scan_backward(b, a, b, log_h, axis=1, backend="numpy")
        print("close", np.allclose(log_h, logscan.scan(a, b, axis=1, backend="numpy"), rtol=1e-5, atol=1e-5)
              and all(np.allclose(g, w, rtol=1e-4, atol=1e-5) for g, w in zip(grads[:2], want[:2], strict=True)))
    """)
    assert done.returncode == 0, done.stderr
    assert "close True" in done.stdout, done.stdout + done.stderr


def _recording_kernel(monkeypatch, layer, threads, forked=False):
    """A ParallelKernel whose two versions record which ran, and whether the lock was held."""
    calls = []
    kernel = _threading.ParallelKernel(lambda x: x, {})
    kernel.parallel = lambda x: calls.append(("parallel", _threading._lock.locked()))
    kernel.serial = lambda x: calls.append(("serial", _threading._lock.locked()))
    monkeypatch.setattr(_threading, "current_layer", lambda: layer)
    monkeypatch.setattr(_threading.numba, "get_num_threads", lambda: threads)
    monkeypatch.setattr(_threading, "_forked_from_openmp", forked)
    kernel(0)
    return calls


@pytest.mark.parametrize(("layer", "threads", "forked", "expected"), [
    ("omp", 2, False, ("parallel", False)),      # threadsafe: no lock
    ("tbb", 2, False, ("parallel", False)),
    ("workqueue", 2, False, ("parallel", True)),  # not threadsafe: one call at a time
    ("omp", 1, False, ("serial", False)),        # one thread anyway: no parallel launch at all
    ("omp", 2, True, ("serial", False)),         # forked from a process whose OpenMP threads had started
])
def test_a_parallel_kernel_picks_its_version(monkeypatch, layer, threads, forked, expected):
    assert _recording_kernel(monkeypatch, layer, threads, forked) == [expected]


def test_at_most_one_thread_runs_the_serial_twin_and_restores(monkeypatch):
    """at_most(1) (small arrays) takes the serial twin without touching numba's thread count; the flag does not leak."""
    monkeypatch.setattr(_threading.numba, "set_num_threads", lambda n: pytest.fail("set_num_threads called"))
    with _threading.at_most(1):
        with _threading.at_most(1):
            assert _recording_kernel(monkeypatch, "omp", 2) == [("serial", False)]
        assert _recording_kernel(monkeypatch, "omp", 2) == [("serial", False)]  # still inside the outer one
    assert _recording_kernel(monkeypatch, "omp", 2) == [("parallel", False)]
    with pytest.raises(RuntimeError), _threading.at_most(1):
        raise RuntimeError
    assert _recording_kernel(monkeypatch, "omp", 2) == [("parallel", False)]


def test_at_most_lowers_the_thread_count_only_while_inside(monkeypatch):
    counts = [4]
    monkeypatch.setattr(_threading.numba, "get_num_threads", lambda: counts[-1])
    monkeypatch.setattr(_threading.numba, "set_num_threads", counts.append)
    with _threading.at_most(2):
        assert counts[-1] == 2
    assert counts == [4, 2, 4]
    with _threading.at_most(8):  # more than there are: left as it is
        assert counts[-1] == 4
    assert counts == [4, 2, 4]


def test_the_serial_twin_is_cached_under_its_own_name():
    from logscan.backends.numba_cpu import _chunked  # noqa: PLC0415

    kernel = _chunked.forward
    assert kernel.serial.py_func.__qualname__ == kernel.py_func.__qualname__ + "_serial"
    assert kernel.serial.py_func.__code__ is kernel.py_func.__code__
    assert kernel.parallel.targetoptions["parallel"] and not kernel.serial.targetoptions.get("parallel")
