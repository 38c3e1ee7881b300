r"""A minGRU / minLSTM language model with a hand-written backward, and generation by stepping.

Layout (the paper's LM): embedding, then ``layers`` residual blocks, each

- optional causal depthwise conv: ``x = x + conv(x)``;
- ``x = x + W_out · minRNN(RMSNorm(x))``, the minRNN ``expansion`` times wider than ``x``;
- ``x = x + MLP(RMSNorm(x))``;

then a final RMSNorm and a linear head to logits. Parameters are one flat
dict of arrays with dotted names (``layers.0.rnn.weight_gate``), so an
optimizer, a checkpoint or a gradient check treats them uniformly.

Examples
--------
>>> import numpy as np
>>> from logscan.nn.model import ModelConfig, init_model, model_forward, generate
>>> config = ModelConfig(vocab_size=5, width=8, layers=1)
>>> params = init_model(config, rng=np.random.default_rng(0))
>>> logits, cache = model_forward(params, config, np.zeros((2, 3), np.int64))
>>> logits.shape
(2, 3, 5)
>>> generate(params, config, [1, 2], 4, rng=np.random.default_rng(0)).shape
(6,)
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass

import numpy as np

from logscan.nn import layers
from logscan.nn._checks import check_params
from logscan.nn._xp import array_module, to_host
from logscan.nn.mingru import mingru_backward, mingru_forward, mingru_init, mingru_step
from logscan.nn.minlstm import minlstm_backward, minlstm_forward, minlstm_init, minlstm_step

CELLS = {
    "mingru": (mingru_init, mingru_forward, mingru_backward, mingru_step),
    "minlstm": (minlstm_init, minlstm_forward, minlstm_backward, minlstm_step),
}


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the model.

    Parameters
    ----------
    vocab_size : int
    width : int
        Residual-stream width.
    layers : int
    cell : {"mingru", "minlstm"}
    expansion : float
        minRNN hidden size is ``round(expansion * width)``.
    mlp_ratio : float
        MLP hidden size is ``round(mlp_ratio * width)``.
    conv_kernel : int
        Causal depthwise conv kernel size; 0 for none.
    """

    vocab_size: int
    width: int = 64
    layers: int = 2
    cell: str = "mingru"
    expansion: float = 1.0
    mlp_ratio: float = 4.0
    conv_kernel: int = 0

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"ModelConfig: cell must be one of {sorted(CELLS)}, got {self.cell!r}")
        for name in ("vocab_size", "width", "layers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ModelConfig: {name} must be >= 1, got {getattr(self, name)}")
        if self.expansion <= 0 or self.mlp_ratio <= 0 or self.conv_kernel < 0:
            raise ValueError("ModelConfig: expansion and mlp_ratio must be > 0 and conv_kernel >= 0")

    @property
    def hidden(self):
        return max(1, round(self.expansion * self.width))

    @property
    def mlp_hidden(self):
        return max(1, round(self.mlp_ratio * self.width))


def _part(params, prefix):
    return {key[len(prefix) + 1:]: value for key, value in params.items() if key.startswith(prefix + ".")}


def _merge(into, prefix, grads):
    for key, value in grads.items():
        into[f"{prefix}.{key}"] = value


def init_model(config, *, rng=None, dtype="float32"):
    """Fresh parameters (NumPy) for ``config``; ``rng`` makes them reproducible."""
    rng = np.random.default_rng() if rng is None else rng
    c = config
    params = {}
    _merge(params, "embedding", layers.embedding_init(c.vocab_size, c.width, rng=rng, dtype=dtype))
    init_cell = CELLS[c.cell][0]
    for i in range(c.layers):
        block = f"layers.{i}"
        if c.conv_kernel:
            _merge(params, f"{block}.conv", layers.causal_conv_init(c.width, c.conv_kernel, rng=rng, dtype=dtype))
        _merge(params, f"{block}.rnn_norm", layers.rmsnorm_init(c.width, dtype=dtype))
        _merge(params, f"{block}.rnn", init_cell(c.width, c.hidden, rng=rng, dtype=dtype))
        _merge(params, f"{block}.rnn_out", layers.linear_init(c.hidden, c.width, rng=rng, dtype=dtype))
        _merge(params, f"{block}.mlp_norm", layers.rmsnorm_init(c.width, dtype=dtype))
        _merge(params, f"{block}.mlp", layers.mlp_init(c.width, c.mlp_hidden, rng=rng, dtype=dtype))
    _merge(params, "final_norm", layers.rmsnorm_init(c.width, dtype=dtype))
    _merge(params, "head", layers.linear_init(c.width, c.vocab_size, rng=rng, dtype=dtype))
    return params


@functools.lru_cache(maxsize=32)
def parameter_shapes(config):
    """``{name: shape}`` of the parameters :func:`init_model` makes for ``config``."""
    return {name: tuple(value.shape) for name, value in init_model(config, rng=np.random.default_rng(0)).items()}


def _check_model_params(caller, params, config):
    """The model's parameters: every name of :func:`parameter_shapes`, that shape, one float dtype."""
    check_params(caller, params, parameter_shapes(config))


def _check_tokens(caller, tokens, config, ndim):
    if not hasattr(tokens, "dtype") or tokens.ndim != ndim or tokens.dtype.kind not in "iu":
        raise ValueError(f"{caller}: tokens must be an integer array of {ndim} dimensions, "
                         f"got {getattr(tokens, 'dtype', type(tokens).__name__)} "
                         f"of shape {getattr(tokens, 'shape', None)}")
    if tokens.size and bool(((tokens < 0) | (tokens >= config.vocab_size)).any()):  # one read back on a GPU
        raise ValueError(f"{caller}: tokens must lie in [0, {config.vocab_size}), "
                         f"got values in [{int(tokens.min())}, {int(tokens.max())}]")


def model_forward(params, config, tokens, *, dropout=0.0, rng=None):
    """Logits ``(B, T, vocab_size)`` for integer tokens ``(B, T)``, and the cache for :func:`model_backward`.

    ``dropout`` (training only) zeroes that fraction of the embedding's output
    and of each residual branch's output (minRNN and MLP) before it is added,
    drawing the masks from ``rng`` (``xp.random.default_rng(seed)`` of the
    arrays' module); 0, the default, is the deterministic model that
    :func:`model_step` and evaluation use.
    """
    _check_model_params("model_forward", params, config)
    _check_tokens("model_forward", tokens, config, 2)
    if not 0 <= dropout < 1:
        raise ValueError(f"model_forward: dropout must be in [0, 1), got {dropout}")
    cell_forward = CELLS[config.cell][1]
    x, embedding_cache = layers.embedding_forward(_part(params, "embedding"), tokens)
    x, embedding_drop = layers.dropout_forward(x, dropout, rng)
    caches = []
    for i in range(config.layers):
        block, cache = f"layers.{i}", {}
        if config.conv_kernel:
            y, cache["conv"] = layers.causal_conv_forward(_part(params, f"{block}.conv"), x)
            x = x + y
        y, cache["rnn_norm"] = layers.rmsnorm_forward(_part(params, f"{block}.rnn_norm"), x)
        y, cache["rnn"] = cell_forward(_part(params, f"{block}.rnn"), y)
        y, cache["rnn_out"] = layers.linear_forward(_part(params, f"{block}.rnn_out"), y)
        y, cache["rnn_drop"] = layers.dropout_forward(y, dropout, rng)
        x = x + y
        y, cache["mlp_norm"] = layers.rmsnorm_forward(_part(params, f"{block}.mlp_norm"), x)
        y, cache["mlp"] = layers.mlp_forward(_part(params, f"{block}.mlp"), y)
        y, cache["mlp_drop"] = layers.dropout_forward(y, dropout, rng)
        x = x + y
        caches.append(cache)
    y, final_cache = layers.rmsnorm_forward(_part(params, "final_norm"), x)
    logits, head_cache = layers.linear_forward(_part(params, "head"), y)
    return logits, ((embedding_cache, embedding_drop), caches, final_cache, head_cache)


def model_backward(params, config, cache, grad_logits):
    """Gradients of the loss w.r.t. every parameter (same keys as ``params``), from ``dL/dlogits``."""
    embedding_cache, caches, final_cache, head_cache = cache
    cell_backward = CELLS[config.cell][2]
    grads = {}
    part_grads, grad = layers.linear_backward(_part(params, "head"), head_cache, grad_logits)
    _merge(grads, "head", part_grads)
    part_grads, grad_x = layers.rmsnorm_backward(_part(params, "final_norm"), final_cache, grad)
    _merge(grads, "final_norm", part_grads)
    for i in reversed(range(config.layers)):
        block, layer_cache = f"layers.{i}", caches[i]
        grad = layers.dropout_backward(layer_cache["mlp_drop"], grad_x)
        part_grads, grad = layers.mlp_backward(_part(params, f"{block}.mlp"), layer_cache["mlp"], grad)
        _merge(grads, f"{block}.mlp", part_grads)
        part_grads, grad = layers.rmsnorm_backward(_part(params, f"{block}.mlp_norm"), layer_cache["mlp_norm"], grad)
        _merge(grads, f"{block}.mlp_norm", part_grads)
        grad_x = grad_x + grad
        grad = layers.dropout_backward(layer_cache["rnn_drop"], grad_x)
        part_grads, grad = layers.linear_backward(_part(params, f"{block}.rnn_out"), layer_cache["rnn_out"], grad)
        _merge(grads, f"{block}.rnn_out", part_grads)
        part_grads, grad, _ = cell_backward(_part(params, f"{block}.rnn"), layer_cache["rnn"], grad)
        _merge(grads, f"{block}.rnn", part_grads)
        part_grads, grad = layers.rmsnorm_backward(_part(params, f"{block}.rnn_norm"), layer_cache["rnn_norm"], grad)
        _merge(grads, f"{block}.rnn_norm", part_grads)
        grad_x = grad_x + grad
        if config.conv_kernel:
            part_grads, grad = layers.causal_conv_backward(_part(params, f"{block}.conv"), layer_cache["conv"],
                                                           grad_x)
            _merge(grads, f"{block}.conv", part_grads)
            grad_x = grad_x + grad
    embedding_cache, embedding_drop = embedding_cache
    grad_x = layers.dropout_backward(embedding_drop, grad_x)
    part_grads, _ = layers.embedding_backward(_part(params, "embedding"), embedding_cache, grad_x)
    _merge(grads, "embedding", part_grads)
    return grads


def model_step(params, config, tokens_t, state=None):
    """One token per sequence ``(B,)`` -> logits ``(B, vocab_size)`` and the new state, in O(1) memory.

    ``state`` is None at the start, then what the previous call returned: per
    layer, the minRNN's ``h`` (linear space) and the conv's last inputs.
    """
    _check_model_params("model_step", params, config)
    _check_tokens("model_step", tokens_t, config, 1)
    cell_step = CELLS[config.cell][3]
    state = state or [{"h": None, "conv": None} for _ in range(config.layers)]
    new_state = []
    x, _ = layers.embedding_forward(_part(params, "embedding"), tokens_t)
    for i in range(config.layers):
        block, layer_state = f"layers.{i}", {}
        if config.conv_kernel:
            y, layer_state["conv"] = layers.causal_conv_step(_part(params, f"{block}.conv"), x, state[i]["conv"])
            x = x + y
        else:
            layer_state["conv"] = None
        y, _ = layers.rmsnorm_forward(_part(params, f"{block}.rnn_norm"), x)
        layer_state["h"] = cell_step(_part(params, f"{block}.rnn"), y, state[i]["h"])
        y, _ = layers.linear_forward(_part(params, f"{block}.rnn_out"), layer_state["h"])
        x = x + y
        y, _ = layers.rmsnorm_forward(_part(params, f"{block}.mlp_norm"), x)
        y, _ = layers.mlp_forward(_part(params, f"{block}.mlp"), y)
        x = x + y
        new_state.append(layer_state)
    y, _ = layers.rmsnorm_forward(_part(params, "final_norm"), x)
    logits, _ = layers.linear_forward(_part(params, "head"), y)
    return logits, new_state


def model_prefill(params, config, tokens):
    """Run a prompt ``(B, T)`` in parallel mode; return the last logits ``(B, vocab_size)`` and the state
    from which :func:`model_step` continues (the minRNN's last ``h`` and the conv's last inputs per layer)."""
    logits, (_, caches, _, _) = model_forward(params, config, tokens)
    state = []
    for cache in caches:
        window = cache["conv"][:, cache["conv"].shape[1] - (config.conv_kernel - 1):] if config.conv_kernel else None
        state.append({"h": cache["rnn"]["h"][:, -1], "conv": window})
    return logits[:, -1], state


def generate(params, config, prompt, length, *, rng=None, temperature=1.0, top_k=None):
    """Read ``prompt`` (a 1-d sequence of token ids) in parallel mode, then sample ``length`` tokens by stepping.

    Returns a NumPy int64 array: the prompt followed by the sampled tokens.
    ``temperature=0`` takes the most likely token each step.
    """
    rng = np.random.default_rng() if rng is None else rng
    xp = array_module(params["embedding.weight"])
    tokens = [int(t) for t in prompt]
    if not tokens:
        raise ValueError("generate: prompt must hold at least one token")
    logits, state = model_prefill(params, config, xp.asarray([tokens], dtype=xp.int64))
    for _ in range(length):
        row = to_host(logits[0]).astype(np.float64)
        if temperature == 0:
            token = int(row.argmax())
        else:
            row = row / temperature
            if top_k is not None and top_k < row.size:
                row[row < np.sort(row)[-top_k]] = -np.inf
            probabilities = np.exp(row - row.max())
            token = int(rng.choice(row.size, p=probabilities / probabilities.sum()))
        tokens.append(token)
        logits, state = model_step(params, config, xp.asarray([token], dtype=xp.int64), state)
    return np.asarray(tokens, dtype=np.int64)


def to_device(params, xp):
    """The params as arrays of module ``xp`` (numpy or cupy)."""
    return {key: xp.asarray(value) for key, value in params.items()}


def save(path, params, config, **metadata):
    """Write params, the config and any JSON-able metadata to one ``.npz`` file."""
    header = json.dumps({"config": dataclasses.asdict(config), "metadata": metadata})
    arrays = {f"param:{key}": to_host(value) for key, value in params.items()}
    with open(path, "wb") as f:
        np.savez(f, __header__=np.array(header), **arrays)


def load(path):
    """``(params, config, metadata)`` from a file written by :func:`save` (NumPy arrays)."""
    with np.load(path, allow_pickle=False) as data:
        if "__header__" not in data.files:
            raise ValueError(f"load: {path} is not a logscan.nn checkpoint (no header)")
        header = json.loads(str(data["__header__"]))
        params = {key[len("param:"):]: data[key] for key in data.files if key.startswith("param:")}
    return params, ModelConfig(**header["config"]), header["metadata"]
