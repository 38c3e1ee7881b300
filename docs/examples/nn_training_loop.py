"""Train a one-layer minGRU regressor in a hand-written loop: forward, loss, backward, AdamW.

The target at step t is the running mean of the inputs so far, a recurrence
the layer can represent; the loss must fall. Swap ``numpy`` for ``cupy`` (and
``rng`` for ``cupy.random.default_rng``) to run the same loop on a GPU.
"""

import numpy as np

from logscan.nn import AdamW, mingru_backward, mingru_forward, mingru_init, mingru_step

rng = np.random.default_rng(0)
B, T, d_in, d_hidden = 16, 64, 4, 8
params = mingru_init(d_in, d_hidden, rng=rng, dtype=np.float32)
readout = (rng.standard_normal((d_hidden, 1)) / np.sqrt(d_hidden)).astype(np.float32)
params["readout"] = readout  # the optimizer takes any dict of arrays; the layer ignores extra keys
optimizer = AdamW(params, lr=1e-2, weight_decay=0.0)


def batch():
    x = rng.standard_normal((B, T, d_in)).astype(np.float32)
    target = np.cumsum(x[..., :1], axis=1) / np.arange(1, T + 1, dtype=np.float32)[:, None]
    return x, target


losses = []
for _ in range(150):
    x, target = batch()
    h, cache = mingru_forward(params, x)                  # (B, T, d_hidden), by one parallel scan
    error = h @ params["readout"] - target                # (B, T, 1)
    losses.append(float((error**2).mean()))
    grad_prediction = 2 * error / error.size
    grads, grad_x, _ = mingru_backward(params, cache, grad_prediction @ params["readout"].T)
    grads["readout"] = (h.reshape(-1, d_hidden).T @ grad_prediction.reshape(-1, 1))
    optimizer.step(params, grads)

print(f"mean squared error: first 10 steps {np.mean(losses[:10]):.4f}, last 10 {np.mean(losses[-10:]):.4f}")
assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])

# Generation-style use: the same layer one step at a time, in O(1) memory, gives the same states.
x, _ = batch()
h, _ = mingru_forward(params, x)
state = None
for t in range(T):
    state = mingru_step(params, x[:, t], state)
assert np.allclose(state, h[:, -1], rtol=1e-4, atol=1e-6)
