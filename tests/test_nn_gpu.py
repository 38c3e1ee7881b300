"""The same nn code on CuPy arrays gives what it gives on NumPy (skipped without CuPy and a GPU)."""

import numpy as np
import pytest

cupy = pytest.importorskip("cupy")
pytestmark = pytest.mark.gpu

from logscan.nn import mingru_backward, mingru_forward, mingru_init, minlstm_backward, minlstm_forward, minlstm_init  # noqa: E402
from logscan.nn.model import ModelConfig, init_model, model_forward, to_device  # noqa: E402


def _gpu_or_skip():
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except cupy.cuda.runtime.CUDARuntimeError:
        pytest.skip("no CUDA device")


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_layer_on_cupy_matches_numpy(cell):
    _gpu_or_skip()
    init, forward, backward = ((mingru_init, mingru_forward, mingru_backward) if cell == "mingru"
                               else (minlstm_init, minlstm_forward, minlstm_backward))
    rng = np.random.default_rng(0)
    params = init(8, 16, rng=rng, dtype=np.float32)
    x = rng.standard_normal((3, 50, 8)).astype(np.float32)
    log_h0 = np.log(rng.uniform(0.1, 1, (3, 16))).astype(np.float32)
    grad_h = rng.standard_normal((3, 50, 16)).astype(np.float32)
    h, cache = forward(params, x, log_h0=log_h0)
    grads, grad_x, grad_h0 = backward(params, cache, grad_h)
    params_d = to_device(params, cupy)
    h_d, cache_d = forward(params_d, cupy.asarray(x), log_h0=cupy.asarray(log_h0))
    assert isinstance(h_d, cupy.ndarray)
    grads_d, grad_x_d, grad_h0_d = backward(params_d, cache_d, cupy.asarray(grad_h))
    np.testing.assert_allclose(h_d.get(), h, rtol=1e-4)
    np.testing.assert_allclose(grad_x_d.get(), grad_x, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(grad_h0_d.get(), grad_h0, rtol=1e-3, atol=1e-4)
    for key in grads:
        np.testing.assert_allclose(grads_d[key].get(), grads[key], rtol=1e-3, atol=1e-3)


def test_model_on_cupy_matches_numpy():
    _gpu_or_skip()
    config = ModelConfig(vocab_size=11, width=8, layers=2, conv_kernel=3)
    params = init_model(config, rng=np.random.default_rng(0))
    tokens = np.random.default_rng(1).integers(0, 11, (2, 20))
    logits, _ = model_forward(params, config, tokens)
    logits_d, _ = model_forward(to_device(params, cupy), config, cupy.asarray(tokens))
    np.testing.assert_allclose(logits_d.get(), logits, rtol=1e-4, atol=1e-4)


def test_dropout_training_on_cupy_is_reproducible():
    _gpu_or_skip()
    from logscan.nn import train as train_lib  # noqa: PLC0415

    options = dict(task="selective-copy", device="gpu", steps=4, seed=2, dropout=0.2, width=8, layers=1, seq_len=16,
                   batch=4, data_tokens=2, vocab=5, progress=False)
    first = train_lib.train(**options)["losses"]
    assert np.isfinite(first).all()
    assert train_lib.train(**options)["losses"] == first
