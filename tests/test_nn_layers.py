"""Every layer's, the model's and the loss's backward against central finite differences in float64;
model step mode against the parallel forward; checkpoints; the optimizer."""

import numpy as np
import pytest

from logscan.nn import layers
from logscan.nn.gradcheck import numerical_gradient, relative_error
from logscan.nn.loss import cross_entropy_backward, cross_entropy_forward
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

F64 = np.float64


def check_layer(forward, backward, params, x, tol=1e-7):
    """Gradients of sum(y * w) through the layer, for params and x, against finite differences."""
    y, cache = forward(params, x)
    weights = np.random.default_rng(7).standard_normal(y.shape)
    grads, grad_x = backward(params, cache, weights)
    assert set(grads) == set(params)

    def loss():
        return float((forward(params, x)[0] * weights).sum())

    for name, value in params.items():
        assert relative_error(grads[name], numerical_gradient(loss, value)) < tol, name
    if grad_x is not None:
        assert relative_error(grad_x, numerical_gradient(loss, x)) < tol


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_linear(rng):
    check_layer(layers.linear_forward, layers.linear_backward, layers.linear_init(3, 4, rng=rng, dtype=F64),
                rng.standard_normal((2, 5, 3)))


def test_linear_without_bias(rng):
    check_layer(layers.linear_forward, layers.linear_backward,
                layers.linear_init(3, 2, rng=rng, dtype=F64, bias=False), rng.standard_normal((4, 3)))


def test_embedding_accumulates_repeated_tokens(rng):
    params = layers.embedding_init(5, 3, rng=rng, dtype=F64)
    tokens = np.array([[0, 4, 4], [1, 0, 4]])
    check_layer(layers.embedding_forward, layers.embedding_backward, params, tokens)


@pytest.mark.parametrize("one_hot", [False, True], ids=["indexed-add", "one-hot-product"])
def test_rows_summed_by_index_both_ways(one_hot):
    """The embedding's gradient: the indexed add (NumPy) and the one-hot product (CuPy's reproducible way)."""
    from logscan.nn._xp import sum_rows_by_index  # noqa: PLC0415

    rng = np.random.default_rng(3)
    indices = rng.integers(0, 7, 40)
    values = rng.integers(-8, 8, (40, 5)).astype(np.float32)  # small integers: every order of adding is exact
    expected = np.zeros((9, 5), np.float32)
    for index, row in zip(indices, values, strict=True):
        expected[index] += row
    got = sum_rows_by_index(9, indices, values, one_hot=one_hot)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)  # rows 7 and 8 never indexed: zero


def test_rmsnorm(rng):
    params = {"weight": rng.standard_normal(6)}
    check_layer(layers.rmsnorm_forward, layers.rmsnorm_backward, params, rng.standard_normal((2, 3, 6)))


@pytest.mark.parametrize("kernel_size", [1, 2, 4])
def test_causal_conv(rng, kernel_size):
    params = layers.causal_conv_init(3, kernel_size, rng=rng, dtype=F64)
    x = rng.standard_normal((2, 6, 3))
    check_layer(layers.causal_conv_forward, layers.causal_conv_backward, params, x)
    # causal: the output at t does not change when later inputs do
    y, _ = layers.causal_conv_forward(params, x)
    x2 = x.copy()
    x2[:, 4:] += 1
    np.testing.assert_array_equal(layers.causal_conv_forward(params, x2)[0][:, :4], y[:, :4])
    # stepping gives the same outputs
    window = None
    for t in range(6):
        y_t, window = layers.causal_conv_step(params, x[:, t], window)
        np.testing.assert_allclose(y_t, y[:, t], rtol=1e-12, atol=1e-12)


def test_mlp(rng):
    check_layer(layers.mlp_forward, layers.mlp_backward, layers.mlp_init(3, 5, rng=rng, dtype=F64),
                rng.standard_normal((2, 4, 3)) * 2)


def test_dropout_backward_with_the_same_mask(rng):
    x = rng.standard_normal((3, 5, 4))

    def forward(params, x):  # the same seed each call: the same mask, as finite differences need
        return layers.dropout_forward(x, 0.3, np.random.default_rng(11))

    def backward(params, cache, grad_y):
        return {}, layers.dropout_backward(cache, grad_y)

    check_layer(forward, backward, {}, x)
    y, mask = forward({}, x)
    kept = mask != 0
    assert 0 < kept.sum() < kept.size
    np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-15)
    assert np.all(y[~kept] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_dropout_keeps_the_expected_value_and_drops_its_share(dtype):
    x = np.ones((400, 500), dtype)
    y, mask = layers.dropout_forward(x, 0.2, np.random.default_rng(3))
    assert y.dtype == dtype and mask.dtype == dtype
    dropped = float((y == 0).mean())
    assert abs(dropped - 0.2) < 0.005          # 200 000 draws: the standard deviation is 0.0009
    assert abs(float(y.mean()) - 1) < 0.01
    assert layers.dropout_forward(x, 0.0, None) == (x, None)   # rate 0: the input itself, no rng needed
    assert layers.dropout_backward(None, x) is x


def test_dropout_errors():
    x = np.ones(3)
    with pytest.raises(ValueError, match=r"dropout_forward: rate must be in \[0, 1\), got 1"):
        layers.dropout_forward(x, 1, np.random.default_rng())
    with pytest.raises(ValueError, match=r"dropout_forward: rate must be in \[0, 1\), got -0.1"):
        layers.dropout_forward(x, -0.1, np.random.default_rng())
    with pytest.raises(ValueError, match="dropout_forward: a rate above 0 needs an rng"):
        layers.dropout_forward(x, 0.5, None)


def test_cross_entropy(rng):
    logits = rng.standard_normal((2, 3, 5))
    targets = rng.integers(0, 5, (2, 3))
    mask = np.array([[True, False, True], [False, False, True]])
    loss, cache = cross_entropy_forward(logits, targets, mask)
    grad = cross_entropy_backward(cache)
    numeric = numerical_gradient(lambda: float(cross_entropy_forward(logits, targets, mask)[0]), logits)
    assert relative_error(grad, numeric) < 1e-8
    assert np.all(grad[~mask] == 0)
    with pytest.raises(ValueError, match=r"cross_entropy_forward: targets must have shape \(2, 3\)"):
        cross_entropy_forward(logits, targets[0])
    with pytest.raises(ValueError, match=r"cross_entropy_forward: targets must lie in \[0, 5\), got values in "
                                         r"\[-1, "):
        cross_entropy_forward(logits, np.where(mask, targets, -1))
    with pytest.raises(ValueError, match=r"cross_entropy_forward: targets must lie in \[0, 5\)"):
        cross_entropy_forward(logits, np.full((2, 3), 5))
    with pytest.raises(TypeError, match="cross_entropy_forward: targets must be an integer array, got float64"):
        cross_entropy_forward(logits, targets.astype(np.float64))
    with pytest.raises(ValueError, match=r"cross_entropy_forward: mask must have the shape of targets \(2, 3\)"):
        cross_entropy_forward(logits, targets, mask[:, :2])


CONFIGS = {
    "mingru-conv": ModelConfig(vocab_size=7, width=4, layers=2, cell="mingru", expansion=1.5, mlp_ratio=2,
                               conv_kernel=3),
    "minlstm": ModelConfig(vocab_size=6, width=4, layers=2, cell="minlstm", expansion=1.0, mlp_ratio=1.5),
}


@pytest.mark.parametrize("dropout", [0.0, 0.25], ids=["no-dropout", "dropout"])
@pytest.mark.parametrize("name", CONFIGS)
def test_model_backward(name, dropout):
    config = CONFIGS[name]
    rng = np.random.default_rng(1)
    params = init_model(config, rng=rng, dtype=F64)
    tokens = rng.integers(0, config.vocab_size, (2, 5))
    targets = rng.integers(0, config.vocab_size, (2, 5))

    def forward():  # with dropout, a fresh generator of one seed draws the same masks every call
        return model_forward(params, config, tokens, dropout=dropout, rng=np.random.default_rng(5))

    def loss():
        return float(cross_entropy_forward(forward()[0], targets)[0])

    logits, cache = forward()
    if dropout:
        assert not np.allclose(logits, model_forward(params, config, tokens)[0])
    _, loss_cache = cross_entropy_forward(logits, targets)
    grads = model_backward(params, config, cache, cross_entropy_backward(loss_cache))
    assert set(grads) == set(params)
    for key in params:
        assert grads[key].shape == params[key].shape, key
        assert relative_error(grads[key], numerical_gradient(loss, params[key])) < 1e-7, key


def test_model_dropout_errors():
    config = CONFIGS["minlstm"]
    params = init_model(config, rng=np.random.default_rng(0), dtype=F64)
    tokens = np.zeros((1, 3), np.int64)
    with pytest.raises(ValueError, match=r"model_forward: dropout must be in \[0, 1\), got 1.5"):
        model_forward(params, config, tokens, dropout=1.5)
    with pytest.raises(ValueError, match="dropout_forward: a rate above 0 needs an rng"):
        model_forward(params, config, tokens, dropout=0.1)


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_model_step_equals_parallel(name, dtype):
    config = CONFIGS[name]
    rng = np.random.default_rng(2)
    params = init_model(config, rng=rng, dtype=dtype)
    tokens = rng.integers(0, config.vocab_size, (3, 9))
    logits, _ = model_forward(params, config, tokens)
    state = None
    for t in range(tokens.shape[1]):
        step_logits, state = model_step(params, config, tokens[:, t], state)
        np.testing.assert_allclose(step_logits, logits[:, t], rtol=1e-4 if dtype == np.float32 else 1e-11,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("prompt_length", [1, 2, 6])
def test_prefill_then_step_equals_parallel(name, prompt_length):
    """The state handed from parallel mode (h, conv inputs) continues exactly in step mode."""
    config = CONFIGS[name]
    rng = np.random.default_rng(4)
    params = init_model(config, rng=rng, dtype=np.float64)
    tokens = rng.integers(0, config.vocab_size, (2, 10))
    logits, _ = model_forward(params, config, tokens)
    last, state = model_prefill(params, config, tokens[:, :prompt_length])
    np.testing.assert_allclose(last, logits[:, prompt_length - 1], rtol=1e-11, atol=1e-12)
    for t in range(prompt_length, tokens.shape[1]):
        step_logits, state = model_step(params, config, tokens[:, t], state)
        np.testing.assert_allclose(step_logits, logits[:, t], rtol=1e-11, atol=1e-12)


def test_generate_is_greedy_at_zero_temperature():
    config = CONFIGS["mingru-conv"]
    params = init_model(config, rng=np.random.default_rng(0), dtype=np.float64)
    tokens = generate(params, config, [1, 2, 3], 5, temperature=0)
    assert tokens[:3].tolist() == [1, 2, 3] and len(tokens) == 8
    logits, _ = model_forward(params, config, tokens[None, :-1])
    np.testing.assert_array_equal(logits[0, 2:].argmax(-1), tokens[3:])


def test_model_rejects_bad_tokens():
    config = CONFIGS["minlstm"]
    params = init_model(config, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"model_forward: tokens must lie in \[0, 6\), got values in \[0, 6\]"):
        model_forward(params, config, np.array([[0, 6]]))
    with pytest.raises(ValueError, match="model_forward: tokens must be an integer array of 2 dimensions"):
        model_forward(params, config, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="ModelConfig: cell must be one of"):
        ModelConfig(vocab_size=3, cell="gru")


def test_model_rejects_parameters_of_another_model():
    config = CONFIGS["mingru-conv"]
    params = init_model(config, rng=np.random.default_rng(0))
    tokens = np.array([[0, 1, 2]])
    gain = dict(params, **{"layers.1.mlp_norm.weight": np.ones(1, np.float32)})  # would broadcast silently
    with pytest.raises(ValueError, match=r"model_forward: params\['layers.1.mlp_norm.weight'\] must have shape "
                                         r"\(4,\), got \(1,\)"):
        model_forward(gain, config, tokens)
    with pytest.raises(ValueError, match=r"model_step: params\['layers.1.mlp_norm.weight'\]"):
        model_step(gain, config, tokens[:, 0])
    missing = {k: v for k, v in params.items() if k != "head.bias"}
    with pytest.raises(ValueError, match="model_forward: params is missing 'head.bias'"):
        model_forward(missing, config, tokens)
    other = init_model(CONFIGS["minlstm"], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="model_forward: params is missing"):
        model_forward(other, config, tokens)


def test_save_load_roundtrip(tmp_path):
    config = CONFIGS["mingru-conv"]
    params = init_model(config, rng=np.random.default_rng(0))
    save(tmp_path / "model.npz", params, config, step=12)
    loaded, loaded_config, metadata = load(tmp_path / "model.npz")
    assert loaded_config == config and metadata == {"step": 12}
    assert set(loaded) == set(params)
    for key in params:
        np.testing.assert_array_equal(loaded[key], params[key])
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ValueError, match="not a logscan.nn checkpoint"):
        load(tmp_path / "other.npz")


def test_adamw_minimizes_a_quadratic_and_clips():
    params = {"w": np.array([[3.0, -2.0]]), "b": np.array([1.0])}
    opt = AdamW(params, lr=0.1, weight_decay=0.0, clip_norm=1.0)
    first = {"w": 2 * params["w"], "b": 2 * params["b"]}
    norm = opt.step(params, first)
    assert norm == pytest.approx(2 * np.sqrt(14))
    for key, g in first.items():  # the first moment holds the gradient scaled to norm 1
        np.testing.assert_allclose(opt.m[key], (1 - opt.betas[0]) * g / norm, rtol=1e-12)
    for _ in range(300):
        norm = opt.step(params, {"w": 2 * params["w"], "b": 2 * params["b"]})
    assert norm < 0.1 and np.abs(params["w"]).max() < 0.05 and abs(params["b"][0]) < 0.05
    with pytest.raises(ValueError, match="AdamW.step: grads and params must have the same keys"):
        opt.step(params, {"w": params["w"]})
    with pytest.raises(FloatingPointError, match="diverged"):
        opt.step(params, {"w": params["w"] * np.nan, "b": params["b"]})


def test_adamw_decays_matrices_only():
    params = {"w": np.ones((2, 2)), "b": np.ones(2)}
    opt = AdamW(params, lr=0.1, weight_decay=0.5)
    opt.step(params, {"w": np.zeros((2, 2)), "b": np.zeros(2)})
    np.testing.assert_allclose(params["w"], 0.95)
    np.testing.assert_allclose(params["b"], 1.0)
