"""``out=`` of scan_backward and linear_scan_backward on the CPU: same bits as fresh outputs, every error path."""

from __future__ import annotations

import numpy as np
import pytest

import logscan
from tests.helpers import PACKED_FLAG, assert_same_bits, log_inputs, packed_record_field

FUNCTIONS = {
    "scan_backward": (logscan.scan, logscan.scan_backward, "log_h0", ("grad_log_a", "grad_log_b", "grad_log_h0")),
    "linear_scan_backward": (logscan.linear_scan, logscan.linear_scan_backward, "h0", ("grad_a", "grad_b", "grad_h0")),
}


def _problem(rng, name, shape=(3, 41, 5), axis=1, dtype=np.float32, with_state=True):
    forward, backward, state_name, _labels = FUNCTIONS[name]
    first, second = log_inputs(rng, shape, dtype)
    if name == "linear_scan_backward":
        first = np.tanh(first).astype(dtype)
    state_shape = shape[:axis] + shape[axis + 1:]
    state = {state_name: rng.normal(size=state_shape).astype(dtype)} if with_state else {}
    value = forward(first, second, axis=axis, **state)
    grad = rng.normal(size=shape).astype(dtype)
    return backward, (grad, first, second, value), dict(axis=axis, **state)


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("with_state", [False, True], ids=["no-state", "state"])
def test_out_gives_the_same_bits_and_returns_its_arrays(backend, method, name, with_state, rng):
    backward, args, kwargs = _problem(rng, name, with_state=with_state)
    kwargs.update(method=method, backend=backend)
    want = backward(*args, **kwargs)
    out = tuple(np.full_like(w, np.nan) if w is not None else None for w in want)
    got = backward(*args, out=out if with_state else out[:2], **kwargs)
    assert len(got) == 3 and all(g is o for g, o in zip(got, out, strict=True))
    for g, w in zip(got, want, strict=True):
        if w is None:
            assert g is None
        else:
            assert_same_bits(g, w, what="gradient written into out")


def test_the_returned_tuple_can_be_the_next_out(rng):
    backward, args, kwargs = _problem(rng, "scan_backward", with_state=False)
    first = backward(*args, **kwargs)
    again = backward(*args, out=first, **kwargs)
    assert again[0] is first[0] and again[1] is first[1] and again[2] is None
    fresh = backward(*args, **kwargs)
    assert_same_bits(again[0], fresh[0], what="grad_log_a")


def test_broadcast_inputs_and_state_are_summed_into_out(rng):
    """log_a of shape (1, T) and a scalar log_h0: their gradients are sums, written into out of their own shape."""
    T = 33
    log_a = np.full((1, T), -0.3, np.float64)
    log_b = rng.normal(size=(4, T))
    log_h0 = np.float64(0.5) * np.ones(())
    log_h = logscan.scan(log_a, log_b, log_h0=log_h0)
    g = rng.normal(size=(4, T))
    want = logscan.scan_backward(g, log_a, log_b, log_h, log_h0=log_h0)
    out = (np.empty((1, T)), np.empty((4, T)), np.empty(()))
    got = logscan.scan_backward(g, log_a, log_b, log_h, log_h0=log_h0, out=out)
    for g_, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g_, w, rtol=1e-13, atol=1e-13)
    assert got[0] is out[0] and got[2] is out[2]


def test_strided_out_and_out_overlapping_an_input(rng):
    backward, args, kwargs = _problem(rng, "scan_backward", shape=(2, 3, 30), axis=2, with_state=False)
    want = backward(*args, **kwargs)
    # Fortran order (no (outer, T, inner) view: written through a temporary) and a reversed view (direct)
    strided = (np.asfortranarray(np.zeros((2, 3, 30), np.float32)), np.zeros((2, 3, 60), np.float32)[..., ::-2])
    got = backward(*args, out=strided, **kwargs)
    for g, o, w in zip(got[:2], strided, want[:2], strict=True):
        assert g is o
        assert_same_bits(g, w, what="strided out")
    # out[0] over log_h shifted by one step: written directly, row t would overwrite h_{t-1} before row
    # t - 1 reads it
    grad, first, second, value = args
    buffer = np.zeros((2, 3, 31), np.float32)
    buffer[..., 1:] = value
    got = backward(grad, first, second, buffer[..., 1:], out=(buffer[..., :30], np.empty_like(grad)), **kwargs)
    assert_same_bits(got[0], want[0], what="out over log_h shifted by one step")
    # out[1] is the upstream gradient itself
    grad = grad.copy()
    got = backward(grad, first, second, value, out=(np.empty_like(grad), grad), **kwargs)
    assert got[1] is grad
    assert_same_bits(grad, want[1], what="out over an input")


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_packed_record_fields_as_inputs_and_out(name, rng):
    """Byte strides of 5 for float32 (no whole number of elements) go through copies: same bits, flags untouched."""
    backward, args, kwargs = _problem(rng, name, shape=(2, 3, 30), axis=2, with_state=True)
    want = backward(*args, **kwargs)
    state_name = FUNCTIONS[name][2]
    fields = [packed_record_field(x)[0] for x in (*args, kwargs[state_name])]
    out, records = zip(*(packed_record_field(np.full_like(w, np.nan)) for w in want), strict=True)
    got = backward(*fields[:4], out=tuple(out), **dict(kwargs, **{state_name: fields[4]}))
    for g, o, w, r in zip(got, out, want, records, strict=True):
        assert g is o
        assert_same_bits(g, w, what="gradient into a packed field")
        assert (r["flag"] == PACKED_FLAG).all(), "out= wrote over the other field of the records"


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_out_errors(name, rng):
    backward, args, kwargs = _problem(rng, name, shape=(2, 9), with_state=True)
    labels = FUNCTIONS[name][3]
    good = tuple(np.empty(s, np.float32) for s in ((2, 9), (2, 9), (2,)))

    def fails(error, match, out):
        with pytest.raises(error, match=rf"^logscan\.{name}: " + match):
            backward(*args, out=out, **kwargs)

    fails(TypeError, rf"out must be a tuple of 3 arrays \({labels[0]}, {labels[1]}, {labels[2]}\), got ndarray",
          good[0])
    fails(ValueError, r"out must be a tuple of 3 arrays .*, got 2 entries", good[:2])
    fails(TypeError, rf"out\[2\] \({labels[2]}\) must be an array, got None", good[:2] + (None,))
    fails(ValueError, rf"out\[0\] \({labels[0]}\) must have shape \(2, 9\), got \(9, 2\)",
          (np.empty((9, 2), np.float32),) + good[1:])
    fails(ValueError, rf"out\[2\] \({labels[2]}\) must have shape \(2,\), got \(3,\)",
          good[:2] + (np.empty(3, np.float32),))
    fails(TypeError, rf"out\[1\] \({labels[1]}\) must have dtype float32, got float64",
          (good[0], np.empty((2, 9)), good[2]))
    frozen = np.empty((2, 9), np.float32)
    frozen.flags.writeable = False
    fails(ValueError, rf"out\[0\] \({labels[0]}\) is read-only", (frozen,) + good[1:])
    fails(ValueError, rf"out\[0\] \({labels[0]}\) and out\[1\] \({labels[1]}\) overlap in memory",
          (good[0], good[0], good[2]))
    fails(TypeError, r"out\[1\] must be an array \(numpy\.ndarray, .*got list", (good[0], [[0.0] * 9] * 2, good[2]))
    # without a state, two arrays (or a trailing None) are expected
    _backward, args2, kwargs2 = _problem(rng, name, shape=(2, 9), with_state=False)
    with pytest.raises(ValueError, match=rf"^logscan\.{name}: out must be a tuple of 2 arrays "
                                         rf"\({labels[0]}, {labels[1]}\), got 3 entries"):
        backward(*args2, out=good, **kwargs2)
