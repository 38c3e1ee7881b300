"""minGRU / minLSTM layers: forward, forward+backward (time and peak memory) and one O(1) step."""

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
