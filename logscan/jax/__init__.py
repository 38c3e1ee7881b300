"""logscan for JAX: differentiable scans that work under :func:`jax.jit`, :func:`jax.grad` and :func:`jax.vmap`.

Importing this module imports jax (``import logscan`` alone does not). The
functions follow NumPy's conventions (``axis=``, broadcasting like
:func:`jax.numpy.add`); their gradients are the library's hand-written
backward passes, attached with :func:`jax.custom_vjp`. Inside jitted code on
the CPU they are XLA custom calls that compute on XLA's own buffers; see
:doc:`/jax` for what a call does and costs on each platform.
"""

from logscan.jax.scans import linear_scan, logcumsumexp, scan

__all__ = ["linear_scan", "logcumsumexp", "scan"]
