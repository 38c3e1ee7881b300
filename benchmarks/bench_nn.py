"""minGRU / minLSTM layers: forward and forward+backward (time and peak memory), one O(1) step, and one
training step of the whole model (time and peak memory)."""

from __future__ import annotations

import numpy as np

from logscan import nn

from .common import QUICK, Timing

# (B, T, d_in, d_hidden): the layer shape and a longer, narrower one.
LAYER_SHAPES = {"16x1024x256x256": (16, 1024, 256, 256), "4x4096x128x128": (4, 4096, 128, 128)}
if QUICK:
    LAYER_SHAPES = {"2x64x16x16": (2, 64, 16, 16)}
CELLS = {"mingru": (nn.mingru_init, nn.mingru_forward, nn.mingru_backward, nn.mingru_step),
         "minlstm": (nn.minlstm_init, nn.minlstm_forward, nn.minlstm_backward, nn.minlstm_step)}


class _LayerCase:
    params = [list(CELLS), list(LAYER_SHAPES)]
    param_names = ["cell", "shape"]
    timeout = 600

    def setup(self, cell, shape_id):
        B, T, d_in, d_hidden = LAYER_SHAPES[shape_id]
        self.init, self.forward, self.backward, self.step = CELLS[cell]
        rng = np.random.default_rng(0)
        self.params = self.init(d_in, d_hidden, rng=rng, dtype="float32")
        self.x = rng.standard_normal((B, T, d_in)).astype(np.float32)
        self.grad_h = rng.standard_normal((B, T, d_hidden)).astype(np.float32)
        self.x_t = self.x[:, 0]
        self.h_prev = np.abs(self.grad_h[:, 0])
        self.forward_backward()  # warm-up: numba compiles or loads its cache here

    def forward_backward(self):
        _, cache = self.forward(self.params, self.x)
        self.backward(self.params, cache, self.grad_h)


class MinRNNLayer(Timing, _LayerCase):
    """Layer forward, forward+backward, and one generation step, float32 (scans by backend auto)."""

    def time_forward(self, cell, shape_id):
        self.forward(self.params, self.x)

    def time_forward_backward(self, cell, shape_id):
        self.forward_backward()

    def time_step(self, cell, shape_id):
        self.step(self.params, self.x_t, self.h_prev)


class MinRNNLayerMemory(_LayerCase):
    """Peak memory of a process running the layer forward+backward (inputs included)."""

    def peakmem_forward_backward(self, cell, shape_id):
        self.forward_backward()

    def peakmem_forward(self, cell, shape_id):
        self.forward(self.params, self.x)


# One optimizer step of the whole model (forward, loss, backward, AdamW): `logscan train`'s two defaults.
# (layers, width, expansion, MLP ratio, conv kernel, vocabulary, batch, sequence length)
MODELS = {"selective-copy": (3, 64, 2.0, 4.0, 0, 10, 32, 64), "charlm": (3, 384, 1.5, 2.0, 4, 65, 16, 256)}
if QUICK:
    MODELS = {"tiny": (1, 16, 1.0, 2.0, 3, 7, 2, 16)}


class _TrainStepCase:
    params = [list(CELLS), list(MODELS)]
    param_names = ["cell", "model"]
    timeout = 600

    def setup(self, cell, model_id):
        from logscan.nn import model as model_lib  # noqa: PLC0415
        from logscan.nn.optim import AdamW  # noqa: PLC0415

        layers, width, expansion, mlp_ratio, conv, vocab, batch, seq_len = MODELS[model_id]
        self.model_lib = model_lib
        self.config = model_lib.ModelConfig(vocab_size=vocab, width=width, layers=layers, cell=cell,
                                            expansion=expansion, mlp_ratio=mlp_ratio, conv_kernel=conv)
        rng = np.random.default_rng(0)
        self.params = model_lib.init_model(self.config, rng=rng)
        self.optimizer = AdamW(self.params, lr=1e-4)
        self.tokens = rng.integers(0, vocab, (batch, seq_len))
        self.targets = rng.integers(0, vocab, (batch, seq_len))
        self.train_step()  # warm-up: numba compiles or loads its cache here

    def train_step(self):
        logits, cache = self.model_lib.model_forward(self.params, self.config, self.tokens)
        _loss, loss_cache = nn.cross_entropy_forward(logits, self.targets)
        grads = self.model_lib.model_backward(self.params, self.config, cache, nn.cross_entropy_backward(loss_cache))
        self.optimizer.step(self.params, grads)


class TrainStep(Timing, _TrainStepCase):
    """One training step of the model `logscan train` builds, float32 on the CPU."""

    def time_train_step(self, cell, model_id):
        self.train_step()


class TrainStepMemory(_TrainStepCase):
    """Peak memory of a process running one training step (model, optimizer state and batch included)."""

    def peakmem_train_step(self, cell, model_id):
        self.train_step()
