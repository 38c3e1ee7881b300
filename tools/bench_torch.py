"""Side by side: logscan.torch.MinGRU forward+backward against a torch-autograd minGRU with the two-pass scan of
popular ports, torch.nn.GRU, and logscan.nn's functional layer on NumPy, all of one shape, float32, on the CPU.

Times are the median of ``--repeat`` rounds, the implementations alternating within a round (so that load from
other processes hits them alike). Peak memory is measured for each implementation in a fresh process: the
resident-set high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``) of one forward+backward above
the resident set before it, inputs and parameters excluded.

    PYTHONPATH=. python tools/bench_torch.py --shape 16 1024 256 256 --threads 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

IMPLEMENTATIONS = ("logscan.torch.MinGRU", "torch two-pass minGRU", "torch.nn.GRU", "logscan.nn functional")


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, default=(16, 1024, 256, 256), metavar=("B", "T", "D_IN", "D_H"))
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--threads", type=int, default=2, help="torch, BLAS and numba threads (default 2)")
    parser.add_argument("--peak-of", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)  # the fresh-process run
    return parser.parse_args(argv)


if __name__ == "__main__":  # thread counts must be set before NumPy, numba and torch load their pools
    ARGS = parse()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import ctypes  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

# A fixed mmap threshold: big arrays go back to the OS when freed, so a run's resident high-water mark is its own.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
try:
    _libc = ctypes.CDLL("libc.so.6")
    _libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    _libc.mallopt(_M_TRIM_THRESHOLD, 1 << 20)
except OSError:
    pass

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import logscan.nn as nn  # noqa: E402
from logscan.torch import MinGRU  # noqa: E402


# ------------------------------------------------------------------ the implementations: each returns run()
def logscan_torch(params, x, grad_h):
    layer = MinGRU.from_params(params)
    xt, gt = torch.tensor(x, requires_grad=True), torch.tensor(grad_h)

    def run():
        layer.zero_grad(set_to_none=True)
        xt.grad = None
        layer(xt).backward(gt)
    return run


def two_pass_layer(p, x):
    """minGRU in log space by autograd; the scan: ``a* = cumsum(log a)``, ``log h = a* + logcumsumexp(log b - a*)``."""
    def log_g(v):
        return torch.where(v >= 0, (F.relu(v) + 0.5).log(), -F.softplus(-v))

    k = x @ p["weight_gate"] + p["bias_gate"]
    log_a, log_z = -F.softplus(k), -F.softplus(-k)
    log_b = log_z + log_g(x @ p["weight_candidate"] + p["bias_candidate"])
    a_star = log_a.cumsum(dim=1)
    log_h = a_star + torch.logcumsumexp(log_b - a_star, dim=1)
    return log_h.exp()


def torch_two_pass(params, x, grad_h):
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    xt, gt = torch.tensor(x, requires_grad=True), torch.tensor(grad_h)

    def run():
        for v in [*p.values(), xt]:
            v.grad = None
        two_pass_layer(p, xt).backward(gt)
    return run


def torch_gru(params, x, grad_h):
    torch.manual_seed(0)
    gru = torch.nn.GRU(x.shape[-1], grad_h.shape[-1], batch_first=True)
    xt, gt = torch.tensor(x, requires_grad=True), torch.tensor(grad_h)

    def run():
        gru.zero_grad(set_to_none=True)
        xt.grad = None
        out, _ = gru(xt)
        out.backward(gt)
    return run


def functional(params, x, grad_h):
    def run():
        _, cache = nn.mingru_forward(params, x)
        nn.mingru_backward(params, cache, grad_h)
    return run


MAKERS = dict(zip(IMPLEMENTATIONS, (logscan_torch, torch_two_pass, torch_gru, functional), strict=True))


# ------------------------------------------------------------------ measuring
def inputs(shape):
    B, T, d_in, d_hidden = shape
    rng = np.random.default_rng(0)
    params = nn.mingru_init(d_in, d_hidden, rng=rng, dtype=np.float32)
    x = rng.standard_normal((B, T, d_in)).astype(np.float32)
    grad_h = rng.standard_normal((B, T, d_hidden)).astype(np.float32)
    return params, x, grad_h


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def peak_bytes(run):
    """Bytes of resident memory ``run`` adds at its peak (after a warm-up run)."""
    run()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident set
    before = _status_kib("VmRSS")
    run()
    return (_status_kib("VmHWM") - before) * 1024


def peak_in_fresh_process(name):
    command = [sys.executable, __file__, "--peak-of", name, "--threads", str(ARGS.threads),
               "--shape", *map(str, ARGS.shape)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


def timed(fns, repeat):
    """Median seconds of each function over ``repeat`` rounds, the functions alternating within a round."""
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    torch.set_num_threads(ARGS.threads)
    if ARGS.peak_of:
        print(peak_bytes(MAKERS[ARGS.peak_of](*inputs(ARGS.shape))))
        return
    import numba  # noqa: PLC0415

    fns = {name: make(*inputs(ARGS.shape)) for name, make in MAKERS.items()}
    for fn in fns.values():
        fn()  # warm-up: numba loads its kernels, torch its caches
    seconds = timed(fns, ARGS.repeat)
    memory = {name: peak_in_fresh_process(name) for name in fns}
    print(f"minGRU forward+backward, (B, T, d_in, d_hidden) = {tuple(ARGS.shape)}, float32, CPU, "
          f"{ARGS.threads} threads (torch, BLAS, numba {numba.threading_layer()}), "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, median of {ARGS.repeat}; "
          f"torch {torch.__version__}, numpy {np.__version__}, numba {numba.__version__}")
    ours = seconds["logscan.torch.MinGRU"]
    print(f"  {'implementation':24s} {'ms':>8s} {'time / MinGRU':>14s} {'peak MiB':>9s}")
    for name, value in seconds.items():
        print(f"  {name:24s} {1e3 * value:8.1f} {value / ours:14.2f} {memory[name] / 2**20:9.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
