"""Side-by-side: logscan.nn minGRU / minLSTM layer forward+backward against the same layer in PyTorch autograd
with the two-pass ``cumsum`` / ``logcumsumexp`` scan of popular ports, in one process; for minGRU also
``torch.nn.GRU`` (cuDNN-style fused GRU, sequential over T) of the same widths.

Reports the best wall time of forward+backward over interleaved rounds and the peak memory above the
inputs (the resident-set high-water mark, reset before each run through
``/proc/self/clear_refs``), and the ratios.

    PYTHONPATH=. python tools/bench_nn.py --shape 16 1024 256 256 --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, default=(16, 1024, 256, 256), metavar=("B", "T", "D_IN", "D_H"))
    parser.add_argument("--cells", nargs="+", default=["mingru", "minlstm"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="BLAS / torch threads for both sides")
    return parser.parse_args()


if __name__ == "__main__":  # thread counts must be set before NumPy loads its BLAS
    ARGS = parse()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import ctypes  # noqa: E402
import time  # noqa: E402

# A fixed mmap threshold: big arrays go back to the OS when freed, so each
# run's resident high-water mark is its own (glibc otherwise keeps them).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
try:
    _libc = ctypes.CDLL("libc.so.6")
    _libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    _libc.mallopt(_M_TRIM_THRESHOLD, 1 << 20)
except OSError:
    pass

import numpy as np  # noqa: E402

import logscan  # noqa: E402
import logscan.nn as nn  # noqa: E402


def _rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def peak_bytes(fn):
    """Bytes of resident memory ``fn`` adds at its peak."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before = _rss_kib("VmRSS")
    fn()
    return (_rss_kib("VmHWM") - before) * 1024


def timed_interleaved(fns, repeat):
    """Best time of each function over ``repeat`` rounds, the functions alternating within a round
    (so that load from other processes hits both sides alike)."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def ours(cell, params, x, grad_h):
    forward, backward = {"mingru": (nn.mingru_forward, nn.mingru_backward),
                         "minlstm": (nn.minlstm_forward, nn.minlstm_backward)}[cell]

    def run():
        h, cache = forward(params, x)
        backward(params, cache, grad_h)
    return run


def theirs(cell, params, x, grad_h):
    import torch  # noqa: PLC0415  (optional peer)
    import torch.nn.functional as F  # noqa: PLC0415

    torch.set_num_threads(ARGS.threads)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    xt = torch.tensor(x, requires_grad=True)
    gt = torch.tensor(grad_h)

    def log_g(v):
        return torch.where(v >= 0, (F.relu(v) + 0.5).log(), -F.softplus(-v))

    def layer():
        candidate = xt @ p["weight_candidate"] + p["bias_candidate"]
        if cell == "mingru":
            k = xt @ p["weight_gate"] + p["bias_gate"]
            log_coeffs, log_z = -F.softplus(k), -F.softplus(-k)
        else:
            f = xt @ p["weight_forget"] + p["bias_forget"]
            i = xt @ p["weight_input"] + p["bias_input"]
            diff = F.softplus(-f) - F.softplus(-i)
            log_coeffs, log_z = -F.softplus(diff), -F.softplus(-diff)
        log_values = log_z + log_g(candidate)
        a_star = log_coeffs.cumsum(dim=1)                     # two-pass scan (Heinsen)
        log_h = torch.logcumsumexp(log_values - a_star, dim=1) + a_star
        return log_h.exp()

    def run():
        for v in list(p.values()) + [xt]:
            v.grad = None
        layer().backward(gt)
    return run


def torch_gru(d_in, d_hidden, x, grad_h):
    """``torch.nn.GRU`` (one layer, batch first, same widths) forward+backward: the classic RNN the paper compares."""
    import torch  # noqa: PLC0415  (optional peer)

    torch.set_num_threads(ARGS.threads)
    torch.manual_seed(0)
    gru = torch.nn.GRU(d_in, d_hidden, batch_first=True)
    xt = torch.tensor(x, requires_grad=True)
    gt = torch.tensor(grad_h)

    def run():
        gru.zero_grad(set_to_none=True)
        xt.grad = None
        out, _ = gru(xt)
        out.backward(gt)
    return run


def main():
    B, T, d_in, d_hidden = ARGS.shape
    rng = np.random.default_rng(0)
    print(f"shape (B, T, d_in, d_hidden) = {tuple(ARGS.shape)}, float32, {ARGS.threads} thread(s), "
          f"logscan backends {logscan.available_backends()} (nn scans with backend='auto'), "
          f"numpy {np.__version__}", end="")
    try:
        import torch  # noqa: PLC0415
        print(f", torch {torch.__version__}")
    except ImportError:
        torch = None
        print(", torch not installed")
    for cell in ARGS.cells:
        init = nn.mingru_init if cell == "mingru" else nn.minlstm_init
        params = init(d_in, d_hidden, rng=rng, dtype=np.float32)
        x = rng.standard_normal((B, T, d_in)).astype(np.float32)
        grad_h = rng.standard_normal((B, T, d_hidden)).astype(np.float32)
        rows = [("logscan.nn", ours(cell, params, x, grad_h))]
        if torch is not None:
            rows.append(("torch autograd two-pass", theirs(cell, params, x, grad_h)))
            if cell == "mingru":
                rows.append(("torch.nn.GRU", torch_gru(d_in, d_hidden, x, grad_h)))
        fns = dict(rows)
        for fn in fns.values():
            fn()  # warm-up (JIT compilation, caches) outside the measurements
        memory = {name: peak_bytes(fn) for name, fn in fns.items()}
        best = timed_interleaved(fns, ARGS.repeat)
        results = {}
        for name in fns:
            results[name] = (best[name], memory[name])
            print(f"  {cell:8s} {name:26s} fwd+bwd {1e3 * results[name][0]:8.1f} ms   "
                  f"peak +{memory[name] / 2**20:7.1f} MiB")
        t_ours, m_ours = results["logscan.nn"]
        for name, (t_theirs, m_theirs) in results.items():
            if name != "logscan.nn":
                print(f"  {cell:8s} vs {name:26s} speed-up x{t_theirs / t_ours:.2f}, memory ratio "
                      f"(theirs/ours) x{m_theirs / max(m_ours, 1):.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
