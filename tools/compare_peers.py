#!/usr/bin/env python
r"""logscan against its peers: time, throughput and accuracy, side by side, in one process.

Every runner gets the same float32 inputs (minGRU-like gates,
``log_a = log sigmoid(-k)``, ``log_b = log sigmoid(k) + noise``), laid out
``(B, T, D)`` with time on axis 1, and computes
``log h_t = logaddexp(log a_t + log h_{t-1}, log b_t)``. Accuracy is the
largest ``|log h - log h_ref|`` against :func:`logscan.reference.scan` in
float64 on the same input values (an error of ``e`` in ``log h`` is a relative
error of about ``e`` in ``h``).

Runners (a missing package skips its runners with a line saying so):

- ``logscan <backend>:<method>``: every CPU backend that loads here (and the
  GPU ones when a GPU is present);
- ``numpy loop``: a Python loop over T of ``np.logaddexp`` on ``(B, D)`` slices;
- ``jax associative_scan``: ``jax.lax.associative_scan`` (jit-compiled) with the
  log-space pair operator ``(A1, B1), (A2, B2) -> (A1 + A2, logaddexp(A2 + B1, B2))``;
- ``torch two-pass``: ``a_star = cumsum(log_a); log_h = a_star + logcumsumexp(log_b - a_star)``,
  the formulation of popular minGRU ports;
- with ``--layers``: the minGRU / minLSTM layers of :mod:`logscan.nn` (forward
  + backward) against the same layers in PyTorch autograd with the two-pass
  scan, and ``torch.nn.GRU`` of the same widths (``tools/bench_nn.py``, run in
  its own process because it sets the BLAS thread count before NumPy loads);
- on a GPU also ``cupy.cumsum`` of one input (a memory-bound scan of the same
  size, the practical ceiling), a device-to-device copy of as many bytes as a
  scan moves (``1.5 * N * itemsize`` read and as many written: the physical
  ceiling), the torch two-pass on CUDA when torch has CUDA, and
  accelerated-scan's warp kernel (linear space ``h = a h + b`` on ``exp`` of
  the same inputs, in its (B, D, T) layout; its accuracy column is ``log h``)
  when it is installed.

For each shape every runner is prepared and called once (the warm-up, which
compiles jax and numba code and gives the result checked for accuracy), then
the runners are timed in interleaved rounds, so that a slow spell of the
machine hits them all alike. The time reported is the best call: on a shared
machine the fastest call is the one least disturbed by other processes (the
median is kept in ``peers.json``). GPU
runners synchronize after each call. Throughput is
elements per second, and GB/s counts the bytes each runner must move:
``3 * N * itemsize`` for a scan (two inputs read, one output written), also
for the device copy, and ``2 * N * itemsize`` for ``cupy.cumsum`` (one read,
one written).

Usage::

    python tools/compare_peers.py --quick          # about a minute on 2 cores
    python tools/compare_peers.py                  # every method, longer sweeps
    python tools/compare_peers.py --out bench-results --methods auto,sequential

Writes ``<out>/peers.json`` (every row, with the versions), ``<out>/peers.md``
(the tables) and ``<out>/peers_T.png``, ``<out>/peers_channels.png`` (time,
throughput and error against T and against the channel count).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("logscan") is None:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import logscan  # noqa: E402
from logscan import reference, registry  # noqa: E402

AXIS = 1
FIXED_SHAPES = [(8, 2048, 512), (1, 65536, 64)]
SWEEP_T = {"quick": [64, 1024, 8192, 65536], "full": [16, 64, 256, 1024, 4096, 16384, 65536]}  # short T: call overhead
SWEEP_T_CHANNELS = (1, 64)  # (B, D) while T varies
SWEEP_CHANNELS = {"quick": [64, 512, 4096], "full": [16, 64, 256, 1024, 4096, 16384]}
SWEEP_CHANNELS_T = 2048  # T while D varies (B = 1)


def optional(name):
    """Import an optional peer package (torch, jax, cupy, matplotlib) only when a runner needs it."""
    return importlib.import_module(name)


def say(*args):
    print(*args, flush=True)


# ------------------------------------------------------------------ inputs and accuracy
def log_gates(shape, dtype, seed=0):
    """minGRU-like inputs (the same as benchmarks/common.py)."""
    rng = np.random.default_rng(seed)
    k = rng.standard_normal(shape, dtype=np.float32)
    log_a = -np.logaddexp(0.0, k)
    log_b = -np.logaddexp(0.0, -k) + np.float32(0.5) * rng.standard_normal(shape, dtype=np.float32)
    return log_a.astype(dtype), log_b.astype(dtype)


def max_error(result, ref):
    """(largest |result - ref| where both are finite, count of positions where one is not finite and they differ)."""
    result = np.asarray(result, dtype=np.float64)
    finite = np.isfinite(result) & np.isfinite(ref)
    bad = int(np.count_nonzero(~finite & (result != ref)))
    err = float(np.max(np.abs(result[finite] - ref[finite]))) if finite.any() else float("nan")
    return err, bad


# ------------------------------------------------------------------ runners
@dataclass
class Runner:
    """One way to compute the scan: ``prepare(log_a, log_b)`` (NumPy, untimed) returns ``run()``,
    a call that computes it and waits for it; ``to_numpy`` turns the result into NumPy (None: no accuracy);
    ``traffic``: arrays of ``N`` elements that a call must read or write (the bytes GB/s counts)."""

    name: str
    kind: str  # "logscan", "peer" or "ceiling"
    device: str  # "cpu" or "gpu"
    prepare: object
    to_numpy: object = np.asarray
    traffic: int = 3


def logscan_runner(backend, method, device):
    def prepare(log_a, log_b):
        if device == "gpu":
            cupy = optional("cupy")

            log_a, log_b = cupy.asarray(log_a), cupy.asarray(log_b)
            sync = cupy.cuda.get_current_stream().synchronize
        else:
            def sync():
                return None
        out = logscan.scan(log_a, log_b, axis=AXIS, backend=backend, method=method)

        def run():
            logscan.scan(log_a, log_b, axis=AXIS, backend=backend, method=method, out=out)
            sync()
            return out

        return run

    to_numpy = (lambda x: x.get()) if device == "gpu" else np.asarray
    return Runner(f"logscan {backend}:{method}", "logscan", device, prepare, to_numpy)


def numpy_loop_prepare(log_a, log_b):
    out = np.empty_like(log_b)

    def run():
        h = np.full(log_a.shape[0:1] + log_a.shape[2:], -np.inf, log_a.dtype)
        for t in range(log_a.shape[AXIS]):
            h = np.logaddexp(log_a[:, t] + h, log_b[:, t], out=out[:, t])
        return out

    return run


def jax_prepare(log_a, log_b):
    jax = optional("jax")
    jnp = optional("jax.numpy")

    def combine(earlier, later):
        (A1, B1), (A2, B2) = earlier, later
        return A1 + A2, jnp.logaddexp(A2 + B1, B2)

    scan = jax.jit(lambda a, b: jax.lax.associative_scan(combine, (a, b), axis=AXIS)[1])
    a, b = jax.device_put(log_a), jax.device_put(log_b)
    return lambda: scan(a, b).block_until_ready()


def jax_scan_h0(log_a, log_b, log_h0):
    """The same pair scan with an initial state folded into step 0 (for the self-check)."""
    jax = optional("jax")
    jnp = optional("jax.numpy")

    def combine(earlier, later):
        (A1, B1), (A2, B2) = earlier, later
        return A1 + A2, jnp.logaddexp(A2 + B1, B2)

    first = jnp.logaddexp(log_a[:, :1] + log_h0[:, None], log_b[:, :1])
    log_b = jnp.concatenate([first, jnp.asarray(log_b[:, 1:])], axis=AXIS)
    return np.asarray(jax.lax.associative_scan(combine, (jnp.asarray(log_a), log_b), axis=AXIS)[1])


def torch_two_pass(log_a, log_b, log_h0=None, dim=AXIS):
    """``log h = a* + logcumsumexp(log_b - a*)``, ``a* = cumsum(log_a)``; with ``h0``:
    ``log h = a* + logaddexp(log_h0, logcumsumexp(log_b - a*))`` (``h_t = A_t h0 + sum_s A_t / A_s b_s``)."""
    torch = optional("torch")

    a_star = torch.cumsum(log_a, dim=dim)
    acc = torch.logcumsumexp(log_b - a_star, dim=dim)
    if log_h0 is not None:
        acc = torch.logaddexp(log_h0.unsqueeze(dim), acc)
    return a_star + acc


def torch_prepare(device):
    def prepare(log_a, log_b):
        torch = optional("torch")

        dev = "cuda" if device == "gpu" else "cpu"
        a, b = torch.from_numpy(log_a).to(dev), torch.from_numpy(log_b).to(dev)
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)

        def run():
            with torch.inference_mode():
                out = torch_two_pass(a, b)
            sync()
            return out

        return run

    return prepare


def cupy_cumsum_prepare(log_a, log_b):
    cupy = optional("cupy")

    a = cupy.asarray(log_a)
    out = cupy.empty_like(a)
    sync = cupy.cuda.get_current_stream().synchronize

    def run():
        cupy.cumsum(a, axis=AXIS, out=out)
        sync()

    return run


def cupy_copy_prepare(log_a, log_b):
    """A device-to-device copy of half the bytes of the three arrays of a scan: it moves as many as the scan."""
    cupy = optional("cupy")

    nbytes = 3 * log_a.nbytes // 2
    src, dst = cupy.zeros(nbytes, cupy.uint8), cupy.empty(nbytes, cupy.uint8)
    stream = cupy.cuda.get_current_stream()

    def run():
        dst.data.copy_from_device_async(src.data, nbytes, stream)
        stream.synchronize()

    return run


def accelerated_scan_prepare(log_a, log_b):
    """accelerated-scan's warp kernel (linear space, ``x_t = gate_t x_{t-1} + token_t``, layout (B, D, T))."""
    torch = optional("torch")
    warp = optional("accelerated_scan.warp")

    # the same recurrence in linear space, transposed to its (B, D, T) layout outside the timing
    gates = torch.from_numpy(np.exp(log_a)).cuda().transpose(1, 2).contiguous()
    tokens = torch.from_numpy(np.exp(log_b)).cuda().transpose(1, 2).contiguous()

    def run():
        with torch.inference_mode():
            out = warp.scan(gates, tokens)
        torch.cuda.synchronize()
        return out

    return run


def accelerated_scan_result(h):
    """(B, D, T) linear h on the device -> (B, T, D) log h on the host, for the accuracy column."""
    return np.log(h.transpose(1, 2).cpu().double().numpy())


def have(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def gpu_present():
    if not have("cupy"):
        return False
    try:
        cupy = optional("cupy")

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def logscan_backends(device):
    """{backend: methods} of the logscan backends that load here, for ``device`` ("cpu"/"cuda")."""
    found = {}
    for name in registry.names():
        spec = registry.spec(name)
        if spec.device != device:
            continue
        try:
            found[name] = tuple(registry.load(name).methods) if spec.is_available() else None
        except Exception as exc:
            say(f"# logscan backend {name!r} skipped: it does not load here ({type(exc).__name__}: {exc})")
            continue
        if found[name] is None:
            del found[name]
            say(f"# logscan backend {name!r} skipped: not available here")
    return found


def build_runners(args, gpu):
    runners, skipped = [], []
    wanted = None if args.backends == "all" else set(args.backends.split(","))
    for device, family in (("cpu", "cpu"), ("cuda", "gpu")):
        if device == "cuda" and not gpu:
            continue
        for backend, methods in logscan_backends(device).items():
            if wanted is not None and backend not in wanted:
                continue
            chosen = ["auto", *methods] if args.methods == "all" else args.methods.split(",")
            for method in chosen:
                if method == "auto" or method in methods:
                    runners.append(logscan_runner(backend, method, family))
    runners.append(Runner("numpy loop", "peer", "cpu", numpy_loop_prepare))
    if have("jax"):
        runners.append(Runner("jax associative_scan", "peer", "cpu", jax_prepare))
    else:
        skipped.append("jax associative_scan: jax is not installed (pip install 'logscan[peers]')")
    if have("torch"):
        runners.append(Runner("torch two-pass", "peer", "cpu", torch_prepare("cpu"), lambda x: x.numpy()))
    else:
        skipped.append("torch two-pass: torch is not installed (pip install 'logscan[peers]')")
    if gpu:
        runners.append(Runner("cupy.cumsum (ceiling)", "ceiling", "gpu", cupy_cumsum_prepare, None, traffic=2))
        runners.append(Runner("device copy (ceiling)", "ceiling", "gpu", cupy_copy_prepare, None, traffic=3))
        if have("torch"):
            torch = optional("torch")

            if torch.cuda.is_available():
                runners.append(Runner("torch two-pass cuda", "peer", "gpu", torch_prepare("gpu"),
                                      lambda x: x.cpu().numpy()))
                if have("accelerated_scan"):
                    runners.append(Runner("accelerated-scan warp (linear)", "peer", "gpu", accelerated_scan_prepare,
                                          accelerated_scan_result))
                else:
                    skipped.append("accelerated-scan: not installed (pip install accelerated-scan; needs torch CUDA)")
    else:
        skipped.append("GPU runners (logscan GPU backends, cupy.cumsum, device copy): no CuPy GPU here")
    return runners, skipped


def self_check(runners):
    """Each peer formulation against the reference on a tiny input (with h0 where the formulation takes one)."""
    log_a, log_b = log_gates((2, 37, 3), np.float64, seed=3)
    log_h0 = np.array([[0.3, -1.0, -np.inf], [1.0, 2.0, 0.0]])
    ref = reference.scan(log_a, log_b, axis=AXIS, log_h0=log_h0)
    checks = {}
    names = {r.name for r in runners}
    if "torch two-pass" in names:
        torch = optional("torch")

        checks["torch two-pass (h0)"] = torch_two_pass(torch.from_numpy(log_a), torch.from_numpy(log_b),
                                                       torch.from_numpy(log_h0)).numpy()
    if "jax associative_scan" in names:
        checks["jax associative_scan (h0)"] = jax_scan_h0(log_a.astype(np.float32), log_b.astype(np.float32),
                                                         log_h0.astype(np.float32))
    for name, got in checks.items():
        err, bad = max_error(got, ref)
        if not (err < 1e-4 and bad == 0):
            raise SystemExit(f"compare_peers: self-check failed for {name}: max error {err}, {bad} non-finite")


# ------------------------------------------------------------------ measuring
def timed_calls(run, budget, max_calls):
    """Seconds of each of at least one call of ``run``, calling again while ``budget`` seconds are not spent."""
    times = []
    while not times or (sum(times) < budget and len(times) < max_calls):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def run_case(runners, shape, dtype, args, group):
    """Rows for one shape: every runner prepared and warmed up, then timed in interleaved rounds.

    Each round times every runner in turn (in a rotated order) for ``min_time / rounds`` seconds:
    a slow spell of the machine then hits every runner alike, and the best call of each is kept.
    """
    log_a, log_b = log_gates(shape, dtype)
    ref = reference.scan(log_a, log_b, axis=AXIS)
    n = int(np.prod(shape))
    ready = []
    for runner in runners:
        try:
            run = runner.prepare(log_a, log_b)
            result = run()  # warm-up: compiles jax and numba code; its result is the one checked
            err, bad = max_error(runner.to_numpy(result), ref) if runner.to_numpy else (None, None)
        except Exception as exc:  # one broken runner must not lose the others' numbers
            say(f"# {runner.name} failed on {shape}: {type(exc).__name__}: {exc}")
            continue
        ready.append((runner, run, err, bad, []))
        del result
    for k in range(args.rounds if ready else 0):
        shift = k % len(ready)
        for _runner, run, _, _, times in ready[shift:] + ready[:shift]:
            times += timed_calls(run, args.min_time / args.rounds, args.max_calls)
    rows = []
    for runner, _, err, bad, times in ready:
        best, median = min(times), statistics.median(times)
        rows.append(dict(group=group, shape=list(shape), B=shape[0], T=shape[1], D=shape[2],
                         channels=shape[0] * shape[2], dtype=np.dtype(dtype).name, name=runner.name, kind=runner.kind,
                         device=runner.device, seconds=best, median_seconds=median, calls=len(times),
                         elements_per_s=n / best,
                         gb_per_s=runner.traffic * n * np.dtype(dtype).itemsize / best / 1e9,
                         max_abs_error=err, nonfinite=bad))
        say(f"  {shape} {runner.name:<30s} best {best * 1e3:10.3f} ms  median {median * 1e3:10.3f} ms  "
            f"({len(times)} calls)  error {fmt_err(err, bad)}")
    return rows


# ------------------------------------------------------------------ reporting
def fmt_err(err, bad):
    if err is None:
        return "n/a"
    text = f"{err:.1e}"
    return text + (f" ({bad} non-finite)" if bad else "")


def table(rows):
    """A markdown table of one shape's rows, fastest first, with speed relative to each row."""
    rows = sorted(rows, key=lambda r: r["seconds"])
    best_logscan = min((r["seconds"] for r in rows if r["kind"] == "logscan"), default=None)
    head = ["runner", "time (ms)", "Melem/s", "GB/s", "max abs error of log h", "time / best logscan"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ratio = f"{r['seconds'] / best_logscan:.2f}x" if best_logscan else "n/a"
        lines.append(f"| {r['name']} | {r['seconds'] * 1e3:.3f} | {r['elements_per_s'] / 1e6:.1f} | "
                     f"{r['gb_per_s']:.2f} | {fmt_err(r['max_abs_error'], r['nonfinite'])} | {ratio} |")
    return "\n".join(lines)


def versions():
    found = {"python": platform.python_version(), "numpy": np.__version__, "logscan": logscan.__version__,
             "logscan_from": str(Path(logscan.__file__).parent)}
    for name in ("numba", "torch", "jax", "jaxlib", "cupy"):
        if have(name):
            try:
                found[name] = __import__(name).__version__
            except Exception as exc:  # a broken install still gets a line
                found[name] = f"unimportable ({type(exc).__name__})"
    try:  # the commit of the checkout logscan was imported from (none for an installed or copied package)
        found["logscan_commit"] = subprocess.run(["git", "-C", found["logscan_from"], "rev-parse", "--short", "HEAD"],
                                                 capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        pass
    return found


def machine(gpu):
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count()}
    if have("torch"):
        torch = optional("torch")

        info["torch_threads"] = torch.get_num_threads()
    if have("numba"):
        numba = optional("numba")

        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
    if gpu:
        cupy = optional("cupy")

        props = cupy.cuda.runtime.getDeviceProperties(0)
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return info


def plot(rows, group, x_key, x_label, path):
    matplotlib = optional("matplotlib")

    matplotlib.use("Agg")
    plt = optional("matplotlib.pyplot")

    rows = [r for r in rows if r["group"] == group]
    names = list(dict.fromkeys(r["name"] for r in rows))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for name in names:
        mine = sorted((r for r in rows if r["name"] == name), key=lambda r: r[x_key])
        xs = [r[x_key] for r in mine]
        style = dict(marker="o", linewidth=2.2 if mine[0]["kind"] == "logscan" else 1.2,
                     linestyle="-" if mine[0]["kind"] != "ceiling" else ":")
        axes[0].plot(xs, [r["seconds"] * 1e3 for r in mine], label=name, **style)
        axes[1].plot(xs, [r["elements_per_s"] / 1e6 for r in mine], label=name, **style)
        errs = [(x, max(r["max_abs_error"], 1e-9)) for x, r in zip(xs, mine, strict=True)
                if r["max_abs_error"] is not None]
        if errs:
            axes[2].plot(*zip(*errs, strict=True), label=name, **style)
    titles = ["time per call (ms)", "throughput (million elements / s)", "max |log h - reference| (float64)"]
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(x_label)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def layer_rows(args):
    """The layer comparison of ``tools/bench_nn.py`` (its own process: it fixes BLAS threads before NumPy loads)."""
    command = [sys.executable, str(ROOT / "tools" / "bench_nn.py"), "--repeat", "3" if args.quick else "5"]
    say("layers: " + " ".join(command[1:]))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        return f"tools/bench_nn.py failed ({done.returncode}):\n{done.stderr.strip()}"
    return done.stdout.strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="fewer sweep points, logscan method 'auto' only, fewer calls (about a minute)")
    parser.add_argument("--out", default=str(ROOT / "bench-results"), help="folder for peers.json/md and the PNGs")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--backends", default="all", help="comma-separated logscan backends (default: all that load)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated logscan methods, or 'all' (default: all; 'auto' with --quick)")
    parser.add_argument("--sweep-methods", default="auto", help="logscan methods in the sweeps (default: auto)")
    parser.add_argument("--no-plots", action="store_true", help="write no PNG")
    parser.add_argument("--no-sweeps", action="store_true", help="only the fixed shapes")
    parser.add_argument("--layers", action="store_true",
                        help="also the layer rows (logscan.nn vs PyTorch autograd minGRU/minLSTM and torch.nn.GRU)")
    parser.add_argument("--min-time", type=float, default=None, help="seconds of timed calls per runner and shape")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    args.methods = args.methods or ("auto" if args.quick else "all")
    args.min_time = args.min_time if args.min_time is not None else (0.2 if args.quick else 0.5)
    args.rounds = 3 if args.quick else 5
    args.max_calls = 50
    dtype = np.dtype(args.dtype)
    if dtype == np.float64 and have("jax"):
        jax = optional("jax")

        jax.config.update("jax_enable_x64", True)

    gpu = gpu_present()
    runners, skipped = build_runners(args, gpu)
    sweep_args = argparse.Namespace(**vars(args))
    sweep_args.methods = args.sweep_methods
    sweep_runners, _ = build_runners(sweep_args, gpu)
    for line in skipped:
        say(f"# skipped: {line}")
    self_check(runners)
    meta = dict(versions=versions(), machine=machine(gpu), dtype=dtype.name, mode=mode, axis=AXIS,
                date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), skipped=skipped)
    say("# " + json.dumps(meta["versions"]))
    say("# " + json.dumps(meta["machine"]))

    rows = []
    for shape in FIXED_SHAPES:
        say(f"fixed shape {shape} {dtype.name}")
        rows += run_case(runners, shape, dtype, args, "fixed")
    if not args.no_sweeps:
        for T in SWEEP_T[mode]:
            shape = (SWEEP_T_CHANNELS[0], T, SWEEP_T_CHANNELS[1])
            say(f"T sweep {shape}")
            rows += run_case(sweep_runners, shape, dtype, args, "sweep_T")
        for D in SWEEP_CHANNELS[mode]:
            shape = (1, SWEEP_CHANNELS_T, D)
            say(f"channel sweep {shape}")
            rows += run_case(sweep_runners, shape, dtype, args, "sweep_channels")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = [f"logscan peers, {meta['date']}, {dtype.name}, (B, T, D) with time on axis 1, best of several calls",
            f"versions: {json.dumps(meta['versions'])}", f"machine: {json.dumps(meta['machine'])}", ""]
    for line in skipped:
        text.append(f"skipped: {line}")
    for shape in FIXED_SHAPES:
        text += ["", f"### (B, T, D) = {tuple(shape)}", "", table([r for r in rows if r["group"] == "fixed"
                                                                  and tuple(r["shape"]) == shape])]
    if args.layers:
        text += ["", "### layers: forward + backward (tools/bench_nn.py)", "", "```", layer_rows(args), "```"]
    report = "\n".join(text) + "\n"
    say("\n" + report)
    (out / "peers.md").write_text(report)
    (out / "peers.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    if not args.no_plots and not args.no_sweeps:
        if have("matplotlib"):
            plot(rows, "sweep_T", "T", f"T (B={SWEEP_T_CHANNELS[0]}, D={SWEEP_T_CHANNELS[1]})", out / "peers_T.png")
            plot(rows, "sweep_channels", "channels", f"channels B*D (T={SWEEP_CHANNELS_T})",
                 out / "peers_channels.png")
        else:
            say("# no plots: matplotlib is not installed (pip install 'logscan[peers]')")
    say(f"# wrote {out}/peers.md, peers.json" + ("" if args.no_plots or args.no_sweeps else ", peers_T.png, "
                                                 "peers_channels.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
