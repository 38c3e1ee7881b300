"""logscan for PyTorch: differentiable scans and minGRU/minLSTM modules as torch custom ops.

Importing this module imports torch (``import logscan`` alone does not). The
ops are registered with :func:`torch.library.custom_op` in the ``logscan``
namespace, with the library's hand-written backward passes registered as their
autograd formulas and fake (meta) implementations for tracing, so they work in
eager mode, under :func:`torch.compile` (``fullgraph=True``) and with
:func:`torch.library.opcheck`.
"""

from logscan.torch.minrnn import MinGRU, MinLSTM
from logscan.torch.scans import linear_scan, logcumsumexp, scan

__all__ = ["linear_scan", "logcumsumexp", "scan"]
__all__ += ["MinGRU", "MinLSTM"]
