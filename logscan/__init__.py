"""logscan: the linear recurrence ``h_t = a_t h_{t-1} + b_t`` by parallel scans, in log and linear space.

The public API (see the documentation for the math and the contract every
backend keeps):

- :func:`scan`, :func:`scan_backward`: log space, ``log_h[t] = logaddexp(log_a[t] + log_h[t-1], log_b[t])``;
- :func:`linear_scan`, :func:`linear_scan_backward`: ``h[t] = a[t] h[t-1] + b[t]``;
- :func:`logcumsumexp`;
- :func:`available_backends`;
- :mod:`logscan.capi`, the C-style core over raw buffers; :mod:`logscan.reference`, float64 ground truth.

Importing logscan loads neither numba nor any GPU package; backends load on first use.
"""

from logscan import backends as _backends  # noqa: F401  (registers the built-in backends)
from logscan import registry as _registry
from logscan._version import __version__
from logscan.api import linear_scan, linear_scan_backward, logcumsumexp, scan, scan_backward

__all__ = ["__version__", "available_backends", "linear_scan", "linear_scan_backward", "logcumsumexp", "scan",
           "scan_backward"]


def available_backends():
    """Names of the backends usable on this machine, fastest first.

    Examples
    --------
    >>> import logscan
    >>> "numpy" in logscan.available_backends()
    True
    """
    return _registry.available()
