"""numba_cuda backend under Numba's CUDA simulator: every method and op against the float64 reference.

The simulator must be switched on before numba is first imported, and only
for this module's process, so this file runs only with
``NUMBA_ENABLE_CUDASIM=1`` in the environment::

    NUMBA_ENABLE_CUDASIM=1 PYTHONPATH=. python -m pytest tests/test_numba_cuda.py

In an ordinary test run it is skipped here and run in a subprocess by
``tests/test_numba_cuda_simulator.py``. The launch sizes are shrunk
(4-thread blocks, 2-step chunks) so that tiny shapes cross several blocks
and several levels of carry between blocks; the simulator runs about one
block per 50 ms. The warp-shuffle block scan runs with a shuffle emulated
here (the simulator has none), on blocks of two warps; one test runs every
method once at the GPU's own launch sizes (256-thread blocks).
"""

from __future__ import annotations

import ctypes
import os
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0"):
    pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 before numba is imported (tests/test_numba_cuda_simulator.py "
                "runs this module so)", allow_module_level=True)
pytest.importorskip("numba_cuda")

from numba import cuda  # noqa: E402

import logscan  # noqa: E402
from logscan import _device, capi, reference  # noqa: E402
from logscan.backends import numba_cuda as backend  # noqa: E402
from logscan.backends.numba_cuda import lookback  # noqa: E402
from logscan.backends.numba_cuda._kernels import LaunchConfig  # noqa: E402
from tests import helpers  # noqa: E402

METHODS = backend.methods
EPS = {np.float16: 2.0**-10, np.float32: 2.0**-23, np.float64: 2.0**-52}
BACKEND = "numba_cuda"


@pytest.fixture(autouse=True, scope="module")
def tiny_launches():
    """Blocks of 4 threads, chunks of 2 steps: multi-block and multi-level on tiny shapes."""
    saved = dict(vars(backend.CONFIG))
    backend.CONFIG.threads = 4
    backend.CONFIG.unroll_float32 = 3
    backend.CONFIG.unroll_float64 = 2
    backend.CONFIG.tree_block = 4
    backend.CONFIG.chunk_threads = 4
    backend.CONFIG.chunk_float32 = 2
    backend.CONFIG.chunk_float64 = 3
    yield
    vars(backend.CONFIG).update(saved)


def tolerance(dtype, T):
    """(rtol, atol) in units of the dtype's eps, growing with log2 T."""
    eps = EPS[np.dtype(dtype).type]
    scale = 64 * (1 + np.log2(max(T, 1)))
    if np.dtype(dtype) == np.float16:
        return 4 * eps, 4 * eps
    return scale * eps, scale * eps


def assert_close(got, want, dtype, T):
    got = np.asarray(got, np.float64)
    rtol, atol = tolerance(dtype, T)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def inputs(shape, dtype, *, seed=0, axis=-1, linear=False, h0=True):
    rng = np.random.default_rng(seed)
    log_a = (rng.normal(size=shape) - 0.5).astype(dtype)
    log_b = rng.normal(size=shape).astype(dtype)
    state_shape = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    log_h0 = rng.normal(size=state_shape).astype(dtype) if h0 else None
    if linear:
        return np.tanh(log_a).astype(dtype), log_b, log_h0
    return log_a, log_b, log_h0


def ident(method, op, T, dtype=np.float64, extra=""):
    return f"{method}-{op}-T{T}-{np.dtype(dtype).name}{extra}"


# ----------------------------------------------------------------- forward
FORWARD_CASES = [(m, op, T) for m in METHODS for op in ("scan", "linear_scan") for T in (0, 1, 2, 3, 31, 32, 33, 65)]


@pytest.mark.parametrize(("method", "op", "T"), FORWARD_CASES, ids=[ident(*c) for c in FORWARD_CASES])
def test_forward_matches_reference(method, op, T):
    reverse = T % 2 == 1
    a, b, h0 = inputs((2, T), np.float64, seed=T, linear=op == "linear_scan", h0=T % 3 != 0)
    state = {"log_h0" if op == "scan" else "h0": h0}
    got = getattr(logscan, op)(a, b, **state, reverse=reverse, method=method, backend=BACKEND)
    want = getattr(reference, op)(a, b, **state, reverse=reverse)
    assert isinstance(got, np.ndarray) and got.shape == (2, T)
    assert_close(got, want, np.float64, T)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_dtypes(method, dtype):
    a, b, h0 = inputs((3, 17), dtype, seed=1)
    got = logscan.scan(a, b, log_h0=h0, method=method, backend=BACKEND)
    assert got.dtype == dtype
    assert_close(got, reference.scan(a, b, log_h0=h0), dtype, 17)


FLOAT16_CASES = [(m, op) for m in METHODS for op in ("scan_backward", "linear_scan", "linear_scan_backward")]


@pytest.mark.parametrize(("method", "op"), FLOAT16_CASES, ids=[f"{m}-{op}" for m, op in FLOAT16_CASES])
def test_float16_backward_and_linear(method, op):
    """float16 in and out, float32 inside, for the ops ``test_dtypes`` leaves out.

    Checked as the contract checks float16 (``tests/helpers.py``): within one float16 eps (about 1e-3) plus a
    few float32 ulps per level of ``|got - ref| / (1 + |ref|)`` of the float64 reference on the same float16
    values (the backward's ``h`` too). T = 17 crosses blocks and levels of carry at ``tiny_launches``.
    """
    T = 17
    linear = op.startswith("linear")
    reverse = METHODS.index(method) % 2 == 1
    a, b, h0 = inputs((1, T), np.float16, seed=60, linear=linear)
    state = {"h0" if linear else "log_h0": h0, "reverse": reverse}
    forward = reference.linear_scan if linear else reference.scan
    if op == "linear_scan":
        got = logscan.linear_scan(a, b, **state, method=method, backend=BACKEND)
        assert got.dtype == np.float16
        helpers.assert_close(got, forward(a, b, **state), np.float16, T)
        return
    h = forward(a, b, **state).astype(np.float16)
    g = np.random.default_rng(61).normal(size=h.shape).astype(np.float16)
    got = getattr(logscan, op)(g, a, b, h, **state, method=method, backend=BACKEND)
    want = getattr(reference, op)(g, a, b, h, **state)
    for name, x, y in zip(("grad a", "grad b", "grad h0"), got, want, strict=True):
        assert x.dtype == np.float16 and x.shape == y.shape, name
        helpers.assert_close(x, y, np.float16, T, what=name)


@pytest.mark.parametrize("method", METHODS)
def test_many_channels_and_axes(method):
    """inner > 1 (several lanes per chunked block), axis in the middle, a broadcast log_a."""
    rng = np.random.default_rng(2)
    log_b = rng.normal(size=(2, 9, 3))
    log_a = np.full((1, 9, 1), -0.3)
    got = logscan.scan(log_a, log_b, axis=-2, method=method, backend=BACKEND)
    assert_close(got, reference.scan(log_a, log_b, axis=-2), np.float64, 9)


@pytest.mark.parametrize("method", METHODS)
def test_strided_and_negative_axis(method):
    rng = np.random.default_rng(3)
    big_a, big_b = rng.normal(size=(10, 3)) - 1, rng.normal(size=(10, 3))
    a, b = big_a[::2, ::-1], big_b[1::2]  # non-contiguous, one reversed
    got = logscan.scan(a, b, axis=-2, method=method, backend=BACKEND)
    assert_close(got, reference.scan(a, b, axis=0), np.float64, 5)


@pytest.mark.parametrize("method", METHODS)
def test_neg_inf_resets_and_prefix(method):
    T = 12
    log_a = np.full((1, T), -0.1)
    log_b = np.zeros((1, T))
    log_b[0, :4] = -np.inf  # all -inf prefix: -inf, never NaN
    log_a[0, 7] = -np.inf  # a reset
    got = logscan.scan(log_a, log_b, method=method, backend=BACKEND)
    want = reference.scan(log_a, log_b)
    assert np.all(np.isneginf(got[0, :4]))
    assert_close(got, want, np.float64, T)
    grads = logscan.scan_backward(np.ones_like(got), log_a, log_b, got, method=method, backend=BACKEND)
    for g, w in zip(grads[:2], reference.scan_backward(np.ones_like(got), log_a, log_b, want)[:2], strict=True):
        assert not np.isnan(g).any()
        assert_close(g, w, np.float64, T)


@pytest.mark.parametrize("method", ["sequential", "chunked"])
def test_nan_propagates(method):
    log_a, log_b = np.full((1, 9), -0.2), np.zeros((1, 9))
    log_b[0, 4] = np.nan
    got = logscan.scan(log_a, log_b, method=method, backend=BACKEND)
    assert not np.isnan(got[0, :4]).any() and np.isnan(got[0, 4:]).all()


@pytest.mark.parametrize("method", ["sequential", "chunked"])
def test_float32_slow_constant_decay_does_not_drift(method, monkeypatch):
    """One slow decay for every step biases every rounding of log a + log h the same way.

    A plain float32 walk drifted by 2.6e-5 at T = 4096 here; the compensated state keeps it at ulps.
    ``chunked`` runs with the GPU's own chunk length (8 steps; still three levels of carry between
    the 4-thread blocks): the 2-step chunks of ``tiny_launches`` made about 1 400 simulated blocks,
    165 s of the simulator's time, against 33 s.
    """
    monkeypatch.setattr(backend.CONFIG, "chunk_float32", LaunchConfig().chunk_float32)
    T = 4096
    log_a = np.full((1, T, 2), np.log(0.9999), np.float32)
    log_b = np.random.default_rng(6).normal(size=(1, T, 2)).astype(np.float32)
    want = reference.scan(log_a, log_b, axis=1)
    got = logscan.scan(log_a, log_b, axis=1, method=method, backend=BACKEND)
    assert (np.abs(got - want) / (1 + np.abs(want))).max() < 2e-6


def test_chunking_is_exact():
    a, b, _ = inputs((2, 40), np.float64, seed=4, h0=False)
    whole = logscan.scan(a, b, method="chunked", backend=BACKEND)
    first = logscan.scan(a[:, :17], b[:, :17], method="chunked", backend=BACKEND)
    second = logscan.scan(a[:, 17:], b[:, 17:], log_h0=first[:, -1], method="chunked", backend=BACKEND)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, rtol=1e-14, atol=1e-14)


def test_auto_method_and_deterministic():
    a, b, _ = inputs((2, 33), np.float32, seed=5, h0=False)
    one = logscan.scan(a, b, backend=BACKEND)
    two = logscan.scan(a, b, backend=BACKEND)
    assert one.tobytes() == two.tobytes()
    assert backend.choose_method("log_scan", np.float32, 1, 1 << 20, 64) == "chunked"
    assert backend.choose_method("log_scan", np.float32, 16, 4096, 1024) == "sequential"


# ---------------------------------------------------------------- backward
BACKWARD_CASES = [(m, op, T) for m in METHODS for op in ("scan", "linear_scan") for T in (1, 2, 33)]


@pytest.mark.parametrize(("method", "op", "T"), BACKWARD_CASES, ids=[ident(*c) for c in BACKWARD_CASES])
def test_backward_matches_reference(method, op, T):
    reverse = T == 33
    a, b, h0 = inputs((2, T), np.float64, seed=10 + T, linear=op == "linear_scan", h0=T != 2)
    state = {"log_h0" if op == "scan" else "h0": h0}
    h = getattr(reference, op)(a, b, **state, reverse=reverse)
    g = np.random.default_rng(T).normal(size=h.shape)
    got = getattr(logscan, op + "_backward")(g, a, b, h, **state, reverse=reverse, method=method, backend=BACKEND)
    want = getattr(reference, op + "_backward")(g, a, b, h, **state, reverse=reverse)
    for x, y in zip(got, want, strict=True):
        if y is None:
            assert x is None
        else:
            assert_close(x, y, np.float64, T)


def test_backward_broadcast_inputs_sum_gradients():
    rng = np.random.default_rng(11)
    log_a, log_b = np.full((1, 7), -0.4), rng.normal(size=(3, 7))
    h = reference.scan(log_a, log_b)
    g = rng.normal(size=h.shape)
    got = logscan.scan_backward(g, log_a, log_b, h, method="chunked", backend=BACKEND)
    want = reference.scan_backward(g, log_a, log_b, h)
    assert got[0].shape == (1, 7)
    assert_close(got[0], want[0], np.float64, 7)


def test_backward_T0_gives_zero_state_gradient():
    a, b = np.zeros((2, 0)), np.zeros((2, 0))
    ga, gb, gh0 = logscan.scan_backward(a, a, b, a, log_h0=np.zeros(2), backend=BACKEND)
    assert ga.shape == (2, 0) and gh0.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("op", ["scan", "linear_scan"])
def test_backward_out_on_device_and_host(op):
    """out= of the backward: device arrays written in place, NumPy outs with the GPU backend, summed broadcasts."""
    forward, backward = getattr(logscan, op), getattr(logscan, op + "_backward")
    state = "log_h0" if op == "scan" else "h0"
    a, b, h0 = inputs((3, 13), np.float64, seed=21, linear=op == "linear_scan")
    value = forward(a, b, **{state: h0})
    g = np.random.default_rng(22).normal(size=value.shape)
    want = backward(g, a, b, value, **{state: h0}, method="chunked", backend=BACKEND)
    host = tuple(np.full(w.shape, np.nan) for w in want)
    outs = tuple(FakeDeviceArray(x) for x in host)
    got = backward(*(FakeDeviceArray(x) for x in (g, a, b, value)), **{state: FakeDeviceArray(h0)}, out=outs,
                   method="chunked", backend=BACKEND)
    assert all(x is o for x, o in zip(got, outs, strict=True))
    for x, w in zip(host, want, strict=True):
        np.testing.assert_array_equal(x, w)
    numpy_out = tuple(np.empty_like(w) for w in want[:2])
    got = backward(g, a, b, value, out=numpy_out, method="chunked", backend=BACKEND)
    assert got[0] is numpy_out[0] and got[2] is None
    want_no_state = backward(g, a, b, value, method="chunked", backend=BACKEND)
    for x, w in zip(numpy_out, want_no_state[:2], strict=True):
        np.testing.assert_array_equal(x, w)
    # a broadcast first input: its gradient is summed into an out of its own shape
    a1 = a[:1]
    value = forward(a1, b)
    want = backward(g, a1, b, value, method="chunked", backend=BACKEND)
    host = (np.empty((1, 13)), np.empty((3, 13)))
    backward(*(FakeDeviceArray(x) for x in (g, a1, b, value)), out=tuple(FakeDeviceArray(x) for x in host),
             method="chunked", backend=BACKEND)
    np.testing.assert_allclose(host[0], want[0], rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match=r"out\[0\] \(grad_(log_)?a\) and out\[1\] \(grad_(log_)?b\) overlap"):
        backward(*(FakeDeviceArray(x) for x in (g, a, b, forward(a, b))), out=(outs[1], outs[1]), backend=BACKEND)
    with pytest.raises(TypeError, match=r"cannot mix host and device arrays: out\[0\], out\[1\] on the CPU"):
        backward(*(FakeDeviceArray(x) for x in (g, a, b, forward(a, b))), out=numpy_out, backend=BACKEND)


# ------------------------------------------------------------- array families
def test_device_arrays_in_and_out():
    a, b, h0 = inputs((2, 11), np.float32, seed=6)
    d_a, d_b, d_h0 = cuda.to_device(a), cuda.to_device(b), cuda.to_device(h0)
    got = logscan.scan(d_a, d_b, log_h0=d_h0, method="blelloch", backend=BACKEND)
    assert _device.is_device_array(got)
    assert_close(got.copy_to_host(), reference.scan(a, b, log_h0=h0), np.float32, 11)
    out = cuda.device_array((2, 11), np.float32)
    assert logscan.scan(d_a, d_b, method="chunked", backend=BACKEND, out=out) is out
    assert_close(out.copy_to_host(), reference.scan(a, b), np.float32, 11)


def test_in_place_out_is_log_b():
    a, b, _ = inputs((2, 10), np.float64, seed=7, h0=False)
    want = reference.scan(a, b)
    d_a, d_b = cuda.to_device(a), cuda.to_device(b)
    logscan.scan(d_a, d_b, method="hillis_steele", backend=BACKEND, out=d_b)
    assert_close(d_b.copy_to_host(), want, np.float64, 10)


def test_numpy_out_with_gpu_backend():
    a, b, _ = inputs((2, 6), np.float64, seed=8, h0=False)
    out = np.empty((2, 6))
    assert logscan.linear_scan(a, b, out=out, backend=BACKEND) is out
    assert_close(out, reference.linear_scan(a, b), np.float64, 6)


class FakeDeviceArray:
    """Any object with __cuda_array_interface__ (under the simulator, over host memory)."""

    def __init__(self, host, stream=None, device=None, readonly=False):
        self.host = host
        self.__cuda_array_interface__ = {
            "shape": host.shape, "strides": host.strides, "typestr": host.dtype.str,
            "data": (host.__array_interface__["data"][0], readonly), "version": 3}
        if stream is not None:
            self.__cuda_array_interface__["stream"] = stream
        if device is not None:
            self.__dlpack_device__ = lambda: (2, device)


def test_cuda_array_interface_objects_zero_copy():
    a, b, _ = inputs((3, 9), np.float64, seed=9, h0=False)
    got = logscan.scan(FakeDeviceArray(a), FakeDeviceArray(b), method="sequential", backend=BACKEND)
    assert_close(got.copy_to_host(), reference.scan(a, b), np.float64, 9)
    out_host = np.empty((3, 9))
    out = FakeDeviceArray(out_host)
    assert logscan.scan(FakeDeviceArray(a), FakeDeviceArray(b), backend=BACKEND, out=out) is out
    assert_close(out_host, reference.scan(a, b), np.float64, 9)  # written in place, no copy


def test_overlapping_out_goes_through_a_temporary():
    a, b, _ = inputs((1, 12), np.float64, seed=12, h0=False)
    want = reference.scan(a[:, :8], b[:, :8])
    buf = b.copy()
    logscan.scan(FakeDeviceArray(a[:, :8]), FakeDeviceArray(buf[:, :8]), backend=BACKEND,
                 out=FakeDeviceArray(buf[:, 4:]), method="chunked")
    assert_close(buf[:, 4:], want, np.float64, 8)


# ------------------------------------------------------------------ streams
class CudaStreamProtocol:
    def __cuda_stream__(self):
        return (0, 77)


class PtrStream:
    ptr = 78


class TorchLikeStream:
    cuda_stream = 79


class NumbaLikeStream:
    handle = ctypes.c_void_p(80)


@pytest.mark.parametrize(("stream", "handle"), [
    (None, None), (0, 0), (5, 5), (np.int64(6), 6), (CudaStreamProtocol(), 77), (PtrStream(), 78),
    (TorchLikeStream(), 79), (NumbaLikeStream(), 80)], ids=["none", "zero", "int", "np-int", "cuda_stream-protocol",
                                                             "ptr", "cuda_stream-attr", "handle"])
def test_stream_forms(stream, handle, monkeypatch):
    assert _device.stream_handle("f", stream) == handle
    seen = []
    real = backend.on_stream

    def recording(h):
        seen.append(h)
        return real(h)

    monkeypatch.setattr(backend, "on_stream", recording)
    a, b, _ = inputs((1, 5), np.float64, h0=False)
    logscan.scan(a, b, backend=BACKEND, stream=stream)
    assert seen and set(seen) == {handle}


def test_interface_stream_is_used_and_waited_for(monkeypatch):
    waits, seen = [], []
    monkeypatch.setattr(_device, "_wait", lambda producer, consumer: waits.append((producer, consumer)))
    real = backend.on_stream
    monkeypatch.setattr(backend, "on_stream", lambda h: (seen.append(h), real(h))[1])
    a, b, _ = inputs((1, 5), np.float64, h0=False)
    logscan.scan(FakeDeviceArray(a, stream=11), FakeDeviceArray(b, stream=12), backend=BACKEND)
    assert set(seen) == {11} and (12, 11) in waits
    waits.clear(), seen.clear()
    logscan.scan(FakeDeviceArray(a, stream=11), FakeDeviceArray(b), backend=BACKEND, stream=13)
    assert set(seen) == {13} and waits == [(11, 13)]


@pytest.mark.parametrize(("stream", "error", "match"), [
    (True, TypeError, "bool"), (-1, ValueError, "non-negative"), ("s", TypeError, "__cuda_stream__"),
    (1.5, TypeError, "stream must be")])
def test_bad_streams(stream, error, match):
    a, b, _ = inputs((1, 3), np.float64, h0=False)
    with pytest.raises(error, match=match):
        logscan.scan(FakeDeviceArray(a), FakeDeviceArray(b), backend=BACKEND, stream=stream)


def test_stream_with_host_arrays_and_cpu_backend_is_rejected():
    a, b, _ = inputs((1, 3), np.float64, h0=False)
    with pytest.raises(ValueError, match="stream= applies to GPU arrays"):
        logscan.scan(a, b, backend="numpy", stream=5)


# ------------------------------------------------------------------- errors
def test_arrays_on_different_devices():
    a, b, _ = inputs((1, 3), np.float64, h0=False)
    with pytest.raises(ValueError, match=r"different devices \(log_a on cuda:0, log_b on cuda:1\)"):
        logscan.scan(FakeDeviceArray(a, device=0), FakeDeviceArray(b, device=1), backend=BACKEND)


def test_mixing_host_and_device():
    a, b, _ = inputs((1, 3), np.float64, h0=False)
    with pytest.raises(TypeError, match="cannot mix host and device arrays"):
        logscan.scan(a, FakeDeviceArray(b), backend=BACKEND)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"log_a": np.zeros((2, 3), np.int32)}, TypeError, "log_a must have a real floating dtype"),
    ({"log_b": np.zeros((2, 3), ">f8" if np.little_endian else "<f8")}, TypeError,
     r"log_b must be in the machine's byte order, got [<>]f8 \(swapped\); convert it with log_b\.astype"),
    ({"log_b": np.zeros((2, 4))}, ValueError, "log_a and log_b must have the same shape"),
    ({"log_h0": np.zeros(3)}, ValueError, r"log_h0 must have shape \(2,\)"),
    ({"axis": 2}, np.exceptions.AxisError, "axis 2 is out of bounds"),
    ({"method": "nope"}, ValueError, "unknown method 'nope'"),
    ({"out": np.zeros((2, 2))}, ValueError, r"out must have shape \(2, 3\)"),
    ({"out": np.zeros((2, 3), np.float32)}, TypeError, "out must have dtype float64"),
    ({"out": "readonly"}, ValueError, "out is read-only"),
])
def test_errors_on_device_arrays(kwargs, error, match):
    args = {"log_a": np.zeros((2, 3)), "log_b": np.zeros((2, 3)), "log_h0": None, "out": None}
    options = {k: v for k, v in kwargs.items() if k in ("axis", "method")}
    args.update({k: v for k, v in kwargs.items() if k not in options})
    if isinstance(args["out"], str):
        args["out"] = FakeDeviceArray(np.zeros((2, 3)), readonly=True)
    wrap = {k: (FakeDeviceArray(v) if isinstance(v, np.ndarray) else v) for k, v in args.items()}
    with pytest.raises(error, match=r"^logscan\.scan: .*" + match):  # the public name, as on the host
        logscan.scan(wrap["log_a"], wrap["log_b"], log_h0=wrap["log_h0"], out=wrap["out"], backend=BACKEND,
                     **options)


def test_backward_shape_error():
    z = FakeDeviceArray(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"^logscan\.scan_backward: log_h must have shape \(2, 3\)"):
        logscan.scan_backward(z, z, z, FakeDeviceArray(np.zeros((2, 4))), backend=BACKEND)


@pytest.mark.parametrize("function", ["scan_backward", "linear_scan_backward"])
def test_backward_unknown_method_names_the_public_function(function):
    z = FakeDeviceArray(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=rf"^logscan\.{function}: unknown method 'nope' for backend '{BACKEND}'"):
        getattr(logscan, function)(z, z, z, z, backend=BACKEND, method="nope")


def test_logcumsumexp_on_device():
    x = np.random.default_rng(13).normal(size=(2, 9))
    got = logscan.logcumsumexp(FakeDeviceArray(x), backend=BACKEND, method="blelloch", reverse=True)
    assert_close(got.copy_to_host(), reference.logcumsumexp(x, reverse=True), np.float64, 9)


def _capi_call_with_exact_workspace(op, shape, dtype, method, reverse, seed):
    """``capi.<op>`` on pointers (host memory, under the simulator) with a workspace of exactly the asked size.

    The workspace buffer has a guard band after ``capi.workspace_size`` bytes; ``workspace_bytes`` is that
    size, so the backend's carver gets exactly ``backend.workspace_size`` bytes and raises if a level takes
    more. Checks the guard band and every output against the float64 reference.
    """
    outer, T, inner = shape
    log = op.startswith("log")
    p = "log_" if log else ""
    a, b, h0 = inputs(shape, dtype, seed=seed, axis=1, linear=not log)
    state = {"axis": 1, "reverse": reverse, f"{p}h0": h0}
    h = np.ascontiguousarray((reference.scan if log else reference.linear_scan)(a, b, **state))
    buffers = {f"{p}a": a, f"{p}b": b, f"{p}h0": h0}
    if op.endswith("_backward"):
        g = np.random.default_rng(seed).normal(size=shape).astype(dtype)
        h = h.astype(dtype)
        buffers.update({f"grad_{p}h": g, f"{p}h": h})
        outs = {f"grad_{p}a": np.full(shape, np.nan, dtype), f"grad_{p}b": np.full(shape, np.nan, dtype),
                f"grad_{p}h0": np.full(h0.shape, np.nan, dtype)}
        backward = reference.scan_backward if log else reference.linear_scan_backward
        want = dict(zip(outs, backward(g, a, b, h, **state), strict=True))
    else:
        outs, want = {"out": np.full(shape, np.nan, dtype)}, {"out": h}
    sizes = {"outer": outer, "T": T, "inner": inner, "dtype": np.dtype(dtype).name}
    nbytes = capi.workspace_size(op, **sizes, method=method, backend=BACKEND, device="cuda")
    workspace = np.full(nbytes + 256, 0xAB, np.uint8)
    pointers = {}
    for name, x in {**buffers, **outs}.items():
        pointers[name] = x.ctypes.data
        pointers[f"{name}_strides"] = tuple(s // x.itemsize for s in x.strides)
    getattr(capi, op)(**sizes, **pointers, reverse=reverse, method=method, backend=BACKEND, device="cuda",
                      workspace=workspace.ctypes.data, workspace_bytes=nbytes)
    assert (workspace[nbytes:] == 0xAB).all(), f"{op}: the call wrote past the workspace it asked for"
    for name, w in want.items():
        assert_close(outs[name], w, dtype, T)


@pytest.mark.parametrize("method", METHODS)
def test_workspace_size_is_enough_for_every_level(method, monkeypatch):
    """capi's two-phase contract: the size asked for is what the call carves (checked by the carver).

    Every op through :mod:`logscan.capi` with a workspace of exactly ``workspace_size`` bytes: the backend's
    carver raises if any level of carry takes more, and what the call carves (rounded up to the alignment)
    must be all of it. (1, 17, 2) in float32 takes two levels of carry between the blocks of
    ``tiny_launches`` for every multi-level method: 4-step tree tiles (17 -> 5 -> 2) and 4-step chunked tiles
    (2 lanes x 2 rows x 2 steps: 17 -> 5 -> 2); the backward ones run reversed (negative time strides).
    """
    carvers = []

    class RecordingCarver(backend._Carver):
        def __init__(self, workspace):
            super().__init__(workspace)
            carvers.append(self)

    monkeypatch.setattr(backend, "_Carver", RecordingCarver)
    shape = (1, 17, 2)
    assert backend.CONFIG.chunk_layout(2, np.float32) == (2, 2, 2, False)
    for k, op in enumerate(("log_scan", "linear_scan", "log_scan_backward", "linear_scan_backward")):
        carvers.clear()
        _capi_call_with_exact_workspace(op, shape, np.float32, method, reverse=k >= 2, seed=70 + k)
        n = backend.workspace_size(op, np.float32, *shape, method)
        assert len(carvers) <= 1 and sum(c.used for c in carvers) == n, (op, n, [c.used for c in carvers])
        assert (n > 0) == (method != "sequential")
    assert backend.workspace_size("log_scan", np.float64, 1, 65, 1, "sequential") == 0


@pytest.mark.parametrize("op", ["scan", "linear_scan"])
def test_chunked_backward_two_levels_of_carry(op):
    """T = 200 with 12-step tiles: 17 tiles, whose totals take 2 tiles, whose totals take 1."""
    a, b, h0 = inputs((1, 200, 2), np.float64, seed=21, axis=1, linear=op == "linear_scan")
    key = "log_h0" if op == "scan" else "h0"
    h = getattr(reference, op)(a, b, axis=1, **{key: h0})
    g = np.random.default_rng(22).normal(size=h.shape)
    got = getattr(logscan, op + "_backward")(g, a, b, h, axis=1, **{key: h0}, method="chunked", backend=BACKEND)
    want = getattr(reference, op + "_backward")(g, a, b, h, axis=1, **{key: h0})
    for x, y in zip(got, want, strict=True):
        assert_close(x, y, np.float64, 200)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("op", ["scan", "linear_scan"])
def test_lookback_composes_totals_walking_back(op, reverse, monkeypatch):
    """Every tile but the first publishes only its total, so every walk back composes the totals of all the
    tiles before it, as a GPU may have to: 7 tiles of 2 rows x 3 steps per group of 2 channels, 2 groups."""
    monkeypatch.setattr(lookback, "PUBLISH_INCLUSIVE", False)
    assert backend.CONFIG.chunk_layout(2, np.float64) == (2, 2, 3, False)
    a, b, h0 = inputs((2, 40, 2), np.float64, seed=51, axis=1, linear=op == "linear_scan", h0=not reverse)
    state = {"log_h0" if op == "scan" else "h0": h0, "axis": 1, "reverse": reverse}
    got = getattr(logscan, op)(a, b, **state, method="lookback", backend=BACKEND)
    assert_close(got, getattr(reference, op)(a, b, **state), np.float64, 40)


# ------------------------------------------------------ warp shuffles, emulated
SHUFFLES = []  # the deltas of every emulated shuffle, so a test can tell that the shuffle scan ran


def _shfl_up_sync(self, mask, value, delta):
    """``cuda.shfl_up_sync`` for the simulator, which has none: lane ``l`` gets lane ``l - delta``'s value.

    Lanes below ``delta`` keep their own, as on the GPU. The exchange goes through a board shared by the
    block and two block barriers, so it is right only when every thread of the block shuffles together,
    which the full-mask shuffle block scan requires of a warp anyway (the chunked kernels reach it with
    every thread of the block).
    """
    assert mask == 0xFFFFFFFF, "the emulation knows only full-warp shuffles"
    me = threading.current_thread()
    board = vars(me._manager).setdefault("shuffle_board", {})
    board[me.thread_id] = value
    me.syncthreads()
    got = board[me.thread_id - delta] if me.thread_id % 32 >= delta else value
    me.syncthreads()
    SHUFFLES.append(delta)
    return got


@pytest.fixture
def emulated_shuffles(monkeypatch):
    """``cuda.shfl_up_sync`` in the simulator, for this test; ``SHUFFLES`` records the calls."""
    from numba.cuda.simulator import kernelapi

    monkeypatch.setattr(kernelapi.FakeCUDAModule, "shfl_up_sync", _shfl_up_sync, raising=False)
    SHUFFLES.clear()


@pytest.fixture
def warp_shuffles(emulated_shuffles, monkeypatch):
    """Blocks of one channel x 64 chunks (two warps) of 2 steps: the chunked kernels take the shuffle scan."""
    monkeypatch.setattr(backend.CONFIG, "chunk_threads", 64)
    monkeypatch.setattr(backend.CONFIG, "chunk_float32", 2)
    monkeypatch.setattr(backend.CONFIG, "chunk_float64", 2)
    monkeypatch.setattr(backend.CONFIG, "shuffle", True)
    yield
    assert SHUFFLES, "the shuffle block scan did not run"


@pytest.mark.parametrize("method", ["chunked", "lookback"])
def test_warp_shuffle_block_scan_linear(method, warp_shuffles):
    """The GPU's layout for one channel per block (``inner == 1``), which the 4-thread blocks never reach.

    T = 200 makes two 128-step tiles (the second partial); the backward runs the same block scan on the adjoint.
    The log-space scan takes it in ``test_the_gpu_launch_sizes``, on the GPU's eight warps (the simulator's
    time is budgeted: about 8 s a case here).
    """
    assert backend.CONFIG.chunk_layout(1, np.float64) == (1, 64, 2, True)
    T = 200
    a, b, h0 = inputs((1, T, 1), np.float64, seed=31, axis=1, linear=True)
    state = {"h0": h0, "axis": 1, "reverse": method == "lookback"}
    want = reference.linear_scan(a, b, **state)
    assert_close(logscan.linear_scan(a, b, **state, method=method, backend=BACKEND), want, np.float64, T)
    g = np.random.default_rng(32).normal(size=want.shape)
    got = logscan.linear_scan_backward(g, a, b, want, **state, method=method, backend=BACKEND)
    for x, y in zip(got, reference.linear_scan_backward(g, a, b, want, **state), strict=True):
        assert_close(x, y, np.float64, T)


GPU_SIZE_CASES = [(m, 1, 2100) for m in ("sequential", "chunked", "lookback")] + \
                 [(m, 64, 40) for m in ("sequential", "chunked", "lookback")] + \
                 [(m, 1, 600) for m in ("hillis_steele", "blelloch")]


@pytest.mark.parametrize(("method", "inner", "T"), GPU_SIZE_CASES,
                         ids=[f"{m}-inner{i}-T{t}" for m, i, t in GPU_SIZE_CASES])
def test_the_gpu_launch_sizes(method, inner, T, emulated_shuffles, monkeypatch):
    """The sizes the GPU runs (256-thread blocks, 8- and 16-step chunks and unrolls), not the shrunk ones.

    inner = 1 takes the chunked kernels' shuffle block scan on eight warps, and T = 2100 two of their
    2048-step tiles; inner = 64 their shared-memory scan on 32 x 8 threads. T = 600 is three 256-step tiles
    of the textbook kernels (a simulated 256-thread block takes about a second: 64 channels of them, minutes).
    """
    for name, value in vars(LaunchConfig(shuffle=True)).items():
        monkeypatch.setattr(backend.CONFIG, name, value)
    a, b, h0 = inputs((1, T, inner), np.float32, seed=41, axis=1)
    state = {"log_h0": h0, "axis": 1, "reverse": True}
    want = reference.scan(a, b, **state)
    assert_close(logscan.scan(a, b, **state, method=method, backend=BACKEND), want, np.float32, T)
    g = np.random.default_rng(42).normal(size=want.shape).astype(np.float32)
    got = logscan.scan_backward(g, a, b, want.astype(np.float32), **state, method=method, backend=BACKEND)
    for x, y in zip(got, reference.scan_backward(g, a, b, want, **state), strict=True):
        assert_close(x, y, np.float32, T)
    assert bool(SHUFFLES) == (inner == 1 and method in ("chunked", "lookback"))


def test_non_canonical_strides_and_mixed_dtypes_are_copied_on_device():
    """A 4-d view whose outer dims cannot collapse goes through a device copy; float32 + float64 gives float64."""
    rng = np.random.default_rng(23)
    base = rng.normal(size=(3, 4, 5, 2))
    log_b = base.transpose(1, 0, 2, 3)[:, ::2]  # (4, 2, 5, 2): dims before the axis do not collapse
    log_a = np.full(log_b.shape, -0.5, np.float32)
    got = logscan.scan(FakeDeviceArray(log_a), FakeDeviceArray(log_b), axis=2, method="sequential", backend=BACKEND)
    assert got.dtype == np.float64
    assert_close(got.copy_to_host(), reference.scan(log_a, log_b, axis=2), np.float64, 5)




@settings(max_examples=12, deadline=None)
@given(outer=st.integers(1, 3), T=st.integers(0, 40), inner=st.integers(1, 3),
       method=st.sampled_from(["sequential", "chunked", "lookback"]), reverse=st.booleans(),
       with_h0=st.booleans(), seed=st.integers(0, 2**16))
def test_property_forward_backward(outer, T, inner, method, reverse, with_h0, seed):
    a, b, h0 = inputs((outer, T, inner), np.float64, seed=seed, axis=1, h0=with_h0)
    a[..., ::7] = -np.inf  # resets
    h = logscan.scan(a, b, axis=1, log_h0=h0, reverse=reverse, method=method, backend=BACKEND)
    want = reference.scan(a, b, axis=1, log_h0=h0, reverse=reverse)
    assert_close(h, want, np.float64, T)
    g = np.random.default_rng(seed).normal(size=h.shape)
    got = logscan.scan_backward(g, a, b, want, axis=1, log_h0=h0, reverse=reverse, method=method, backend=BACKEND)
    for x, y in zip(got, reference.scan_backward(g, a, b, want, axis=1, log_h0=h0, reverse=reverse), strict=True):
        if y is not None:
            assert_close(x, y, np.float64, T)
