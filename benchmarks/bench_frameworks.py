"""The framework adapters: their scans forward and forward+backward, beside the framework's own scan, each
class skipping (NotImplementedError in setup) where its framework is not installed."""

from __future__ import annotations

from .common import AXIS, QUICK, SHAPE_IDS, SHAPES, Timing, log_gates


class JaxScan(Timing):
    """``logscan.jax.scan`` and ``jax.lax.associative_scan`` (log-space combine with ``jnp.logaddexp``), each
    under ``jax.jit`` on the CPU, float32: forward, and forward+backward (the gradient of ``sum(g * log_h)``
    with respect to both inputs)."""

    params = [["logscan.jax.scan", "jax.lax.associative_scan"], list(SHAPE_IDS)]
    param_names = ["implementation", "shape"]

    def setup(self, implementation, shape_id):
        try:
            import jax
            import jax.numpy as jnp
        except ImportError:
            raise NotImplementedError("jax is not installed") from None
        import logscan.jax

        def combine(earlier, later):
            a1, b1 = earlier
            a2, b2 = later
            return a1 + a2, jnp.logaddexp(b1 + a2, b2)

        scans = {"logscan.jax.scan": lambda a, b: logscan.jax.scan(a, b, axis=AXIS),
                 "jax.lax.associative_scan": lambda a, b: jax.lax.associative_scan(combine, (a, b), axis=AXIS)[1]}
        scan = scans[implementation]
        log_a, log_b = log_gates(SHAPES[shape_id])
        self.a, self.b = jnp.asarray(log_a), jnp.asarray(log_b)
        upstream = jnp.asarray(log_gates(SHAPES[shape_id], seed=1)[1])
        self.forward = jax.jit(scan)
        self.forward_backward = jax.jit(jax.value_and_grad(lambda a, b: jnp.sum(upstream * scan(a, b)), (0, 1)))
        self.block = jax.block_until_ready
        self.time_forward_backward(implementation, shape_id)  # warm-up: XLA and numba compile here
        self.time_forward(implementation, shape_id)

    def time_forward(self, implementation, shape_id):
        self.block(self.forward(self.a, self.b))

    def time_forward_backward(self, implementation, shape_id):
        self.block(self.forward_backward(self.a, self.b))


class TorchMinGRU(Timing):
    """``logscan.torch.MinGRU`` forward+backward beside the same layer in torch autograd with the two-pass scan of
    popular ports (``cumsum`` / ``logcumsumexp``) and ``torch.nn.GRU`` of the same widths, float32 on the CPU:
    time, and the peak memory of the process (torch and the inputs included)."""

    SHAPES = {"16x1024x256x256": (16, 1024, 256, 256)}
    if QUICK:
        SHAPES = {"16x1024x256x256": (2, 64, 16, 16)}
    params = [["logscan.torch.MinGRU", "torch two-pass minGRU", "torch.nn.GRU"], list(SHAPES)]
    param_names = ["implementation", "shape"]

    def setup(self, implementation, shape_id):
        try:
            import torch
            import torch.nn.functional as F
        except ImportError:
            raise NotImplementedError("torch is not installed") from None
        from logscan.torch import MinGRU

        B, T, d_in, d_hidden = self.SHAPES[shape_id]
        torch.manual_seed(0)
        self.x = torch.randn((B, T, d_in), requires_grad=True)
        self.grad_h = torch.randn((B, T, d_hidden))
        layer = MinGRU(d_in, d_hidden)

        def log_g(v):
            return torch.where(v >= 0, (F.relu(v) + 0.5).log(), -F.softplus(-v))

        def two_pass(x):
            k = x @ layer.weight_gate + layer.bias_gate
            log_a = -F.softplus(k)
            log_b = -F.softplus(-k) + log_g(x @ layer.weight_candidate + layer.bias_candidate)
            a_star = log_a.cumsum(dim=1)
            return (a_star + torch.logcumsumexp(log_b - a_star, dim=1)).exp()

        gru = torch.nn.GRU(d_in, d_hidden, batch_first=True)
        self.module = gru if implementation == "torch.nn.GRU" else layer
        self.layer = {"logscan.torch.MinGRU": layer, "torch two-pass minGRU": two_pass,
                      "torch.nn.GRU": lambda x: gru(x)[0]}[implementation]
        self.time_forward_backward(implementation, shape_id)  # warm-up: numba loads its kernels here

    def time_forward_backward(self, implementation, shape_id):
        self.module.zero_grad(set_to_none=True)
        self.x.grad = None
        self.layer(self.x).backward(self.grad_h)

    def peakmem_forward_backward(self, implementation, shape_id):
        self.time_forward_backward(implementation, shape_id)


class TorchSmallCall:
    """A small call, as in a step loop: ``logscan.torch.scan`` on a (1, 4, 16) float32 tensor beside
    ``logscan.scan`` on the same NumPy array (what the torch glue adds: checks and one custom-op dispatch)."""

    params = [["logscan.torch.scan", "logscan.scan"]]
    param_names = ["implementation"]

    def setup(self, implementation):
        try:
            import torch
        except ImportError:
            raise NotImplementedError("torch is not installed") from None
        import logscan
        import logscan.torch

        log_a, log_b = log_gates((1, 4, 16))
        if implementation == "logscan.scan":
            self.call = lambda: logscan.scan(log_a, log_b, axis=AXIS)
        else:
            tensors = torch.from_numpy(log_a), torch.from_numpy(log_b)
            self.call = lambda: logscan.torch.scan(*tensors, dim=AXIS)
        self.call()  # numba loads its kernels here

    def time_scan(self, implementation):
        self.call()
