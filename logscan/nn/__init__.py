"""minGRU / minLSTM and a small model stack with hand-written backward passes, on NumPy or CuPy arrays.

Everything here is plain functions over dicts of arrays: ``*_init`` makes
parameters, ``*_forward`` returns ``(output, cache)``, ``*_backward`` takes the
cache and the upstream gradient and returns gradients with the same keys as
the parameters. The recurrences go through :func:`logscan.scan` and
:func:`logscan.scan_backward`; the same code runs on CuPy arrays. On
C-contiguous float32/float64 NumPy arrays the layers' gate arithmetic (from
the pre-activations to the scan's ``log a``, ``log b`` and back) is one fused
numba pass each way instead of a dozen NumPy passes (``_fused_cpu``; at
(16, 1024, 256, 256) float32 minLSTM forward + backward went from 331-386 to
233-242 ms on a 2-core VM).

Modules: :mod:`~logscan.nn.mingru`, :mod:`~logscan.nn.minlstm` (the layers),
:mod:`~logscan.nn.layers` (linear, embedding, RMSNorm, causal conv, MLP),
:mod:`~logscan.nn.loss`, :mod:`~logscan.nn.model` (the LM, stepping,
generation, checkpoints), :mod:`~logscan.nn.optim` (AdamW),
:mod:`~logscan.nn.tasks`, :mod:`~logscan.nn.train` (``logscan train``),
:mod:`~logscan.nn.gradcheck`.
"""

from logscan.nn.loss import cross_entropy_backward, cross_entropy_forward
from logscan.nn.mingru import mingru_backward, mingru_forward, mingru_init, mingru_step
from logscan.nn.minlstm import minlstm_backward, minlstm_forward, minlstm_init, minlstm_step
from logscan.nn.model import (
    ModelConfig,
    generate,
    init_model,
    load,
    model_backward,
    model_forward,
    model_prefill,
    model_step,
    save,
)
from logscan.nn.optim import AdamW

__all__ = ["AdamW", "ModelConfig", "cross_entropy_backward", "cross_entropy_forward", "generate", "init_model",
           "load", "mingru_backward", "mingru_forward", "mingru_init", "mingru_step", "minlstm_backward",
           "minlstm_forward", "minlstm_init", "minlstm_step", "model_backward", "model_forward", "model_prefill",
           "model_step", "save"]
