"""minGRU / minLSTM and a small model stack with hand-written backward passes, on NumPy or CuPy arrays.

Everything here is plain functions over dicts of arrays: ``*_init`` makes
parameters, ``*_forward`` returns ``(output, cache)``, ``*_backward`` takes the
cache and the upstream gradient and returns gradients with the same keys as
the parameters. The recurrences go through :func:`logscan.scan` and
:func:`logscan.scan_backward`.
"""

from logscan.nn.mingru import mingru_backward, mingru_forward, mingru_init, mingru_step
from logscan.nn.minlstm import minlstm_backward, minlstm_forward, minlstm_init, minlstm_step

__all__ = ["mingru_backward", "mingru_forward", "mingru_init", "mingru_step",
           "minlstm_backward", "minlstm_forward", "minlstm_init", "minlstm_step"]
