"""numba_cuda backend on a real GPU (marked ``gpu``; skipped cleanly without one).

Run on a GPU machine with ``tools/gpu_check.sh`` or
``PYTHONPATH=. python -m pytest -m gpu tests/test_numba_cuda_gpu.py``.
"""

from __future__ import annotations

import functools
import gc
import math
import os
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
    pytest.skip("real-GPU tests do not run under the simulator", allow_module_level=True)
pytest.importorskip("numba_cuda")

from numba import cuda  # noqa: E402

try:
    _HAVE_GPU = bool(cuda.is_available())
except Exception:  # noqa: BLE001
    _HAVE_GPU = False
if not _HAVE_GPU:
    pytest.skip("no CUDA GPU available", allow_module_level=True)

import logscan  # noqa: E402
from logscan import reference  # noqa: E402
from logscan.backends import numba_cuda as backend  # noqa: E402

BACKEND = "numba_cuda"
METHODS = backend.methods
TOL = {np.float32: (2e-5, 2e-5), np.float64: (1e-11, 1e-11)}


def _inputs(shape, dtype, seed, linear=False):
    rng = np.random.default_rng(seed)
    log_a = np.log(rng.uniform(0.5, 0.999, size=shape)).astype(dtype)
    log_b = rng.normal(size=shape).astype(dtype)
    state = rng.normal(size=shape[:1] + shape[2:]).astype(dtype)
    if linear:
        return np.exp(log_a).astype(dtype), (0.1 * log_b).astype(dtype), state
    return log_a, log_b, state


SHAPES = [(2, 1000, 33), (1, 4097, 1), (3, 65, 130), (1, 70000, 2)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("op", ["scan", "linear_scan"])
@pytest.mark.parametrize("method", METHODS)
def test_forward_and_backward_on_gpu(method, op, dtype, shape):
    a, b, h0 = _inputs(shape, dtype, seed=sum(shape), linear=op == "linear_scan")
    key = "log_h0" if op == "scan" else "h0"
    d = [cuda.to_device(x) for x in (a, b, h0)]
    reverse = shape[1] % 2 == 1
    got = getattr(logscan, op)(d[0], d[1], axis=1, **{key: d[2]}, method=method, backend=BACKEND, reverse=reverse)
    want = getattr(reference, op)(a, b, axis=1, **{key: h0}, reverse=reverse)
    rtol, atol = TOL[dtype]
    np.testing.assert_allclose(got.copy_to_host(), want, rtol=rtol * 10, atol=atol * 10)
    if shape[1] > 5000:
        return  # the reference backward is slow on long sequences
    g = np.random.default_rng(1).normal(size=shape).astype(dtype)
    grads = getattr(logscan, op + "_backward")(cuda.to_device(g), d[0], d[1], cuda.to_device(want.astype(dtype)),
                                                axis=1, **{key: d[2]}, method=method, backend=BACKEND,
                                                reverse=reverse)
    wants = getattr(reference, op + "_backward")(g, a, b, want, axis=1, **{key: h0}, reverse=reverse)
    for x, y in zip(grads, wants, strict=True):
        np.testing.assert_allclose(x.copy_to_host(), y, rtol=rtol * 100, atol=atol * 100)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("decay", [None, 0.9999], ids=["random-decays", "slow-constant-decay"])
def test_float32_accuracy_at_T65536(method, decay):
    """The target: float32 within 1e-5 of the float64 reference at T = 65536 (log space: absolute in log h).

    Also with one slow decay repeated, which biases every rounding of log a + log h the same way.
    """
    a, b, _ = _inputs((1, 65536, 4), np.float64, seed=2)
    if decay is not None:
        a = np.full_like(a, np.float32(np.log(decay)))  # a float32 value: the cast below is exact
    want = reference.scan(a, b, axis=1)
    got = logscan.scan(cuda.to_device(a.astype(np.float32)), cuda.to_device(b.astype(np.float32)), axis=1,
                       method=method, backend=BACKEND).copy_to_host()
    assert np.max(np.abs(got - want)) < 1e-5


@pytest.mark.parametrize("method", METHODS)
def test_T_2_to_24(method):
    """One channel, T = 2^24: head and tail against the reference (the tail restarted from the state before it)."""
    T = 1 << 24
    a, b, _ = _inputs((1, T, 1), np.float32, seed=3)
    got = logscan.scan(cuda.to_device(a), cuda.to_device(b), axis=1, method=method, backend=BACKEND).copy_to_host()
    head = reference.scan(a[:, :4096], b[:, :4096], axis=1)
    np.testing.assert_allclose(got[:, :4096], head, rtol=1e-4, atol=1e-4)
    tail = reference.scan(a[:, -4096:], b[:, -4096:], axis=1, log_h0=got[:, -4097].astype(np.float64))
    np.testing.assert_allclose(got[:, -4096:], tail, rtol=1e-4, atol=1e-4)


def _free_bytes():
    """Free GPU memory once the memory earlier tests left in Numba's deferred frees and CuPy's pool is returned."""
    gc.collect()
    cuda.current_context().deallocations.clear()
    if "cupy" in sys.modules:
        sys.modules["cupy"].get_default_memory_pool().free_all_blocks()
    free, _total = cuda.current_context().get_memory_info()
    return free


def _fill(x, value):
    """Fill a Numba device array on the GPU (8 GiB in a few ms), on the default stream."""
    from logscan.backends.numba_cuda._memory import DeviceView  # noqa: PLC0415

    DeviceView(x.__cuda_array_interface__["data"][0], x.shape, None, x.dtype)[...] = value


class _Constant:
    """A read-only device array of one value: every stride 0, so any shape takes 4 bytes of GPU memory."""

    def __init__(self, value, shape):
        self.scalar = cuda.to_device(np.full(1, value, np.float32))
        self.__cuda_array_interface__ = {"shape": shape, "strides": (0,) * len(shape), "typestr": "<f4",
                                         "data": (self.scalar.__cuda_array_interface__["data"][0], True),
                                         "version": 3}


# outer*T*inner = 2^31 + 192 elements: only the last 3 steps of the 64 channels lie past 2^31
BIG_INNER, BIG_T = 64, (1 << 25) + 3
BIG_BYTES = 4 * BIG_INNER * BIG_T  # 8 GiB of float32


def _skip_unless_free(needed, what):
    free = _free_bytes()
    if free < 1.1 * needed:
        pytest.skip(f"{what} needs {1.1 * needed / 2**30:.1f} GiB free on the GPU, {free / 2**30:.1f} GiB are")


@pytest.mark.parametrize("method", METHODS)
def test_64bit_indexing(method):
    """outer*T*inner >= 2^31: elements past 2^31 are where the closed form says.

    log_a is a broadcast constant, log_b = 0, so h_t = (1 - a^(t+1)) / (1 - a) exactly in float64. ``out`` is
    filled with NaN first, so an element never written cannot pass on what an earlier case left in the memory.
    The textbook methods' workspace holds a copy of the whole input (8 GiB more); skipped where it does not fit.
    """
    workspace = backend.workspace_size("log_scan", np.float32, 1, BIG_T, BIG_INNER, method)
    _skip_unless_free(2 * BIG_BYTES + workspace, f"{method} at 2^31 elements")
    log_a_value = -1e-3
    log_a = cuda.to_device(np.full((1, 1, 1), log_a_value, np.float32))
    log_b = cuda.device_array((1, BIG_T, BIG_INNER), np.float32)
    out = cuda.device_array((1, BIG_T, BIG_INNER), np.float32)
    _fill(log_b, 0.0)
    _fill(out, np.nan)
    assert logscan.scan(log_a, log_b, axis=1, method=method, backend=BACKEND, out=out) is out
    a = np.float64(np.float32(log_a_value))
    for t in (0, 1000, BIG_T // 2, BIG_T - 3, BIG_T - 2, BIG_T - 1):
        want = math.log(-math.expm1((t + 1) * a)) - math.log(-math.expm1(a))
        row = out[0, t].copy_to_host()
        np.testing.assert_allclose(row, np.full(BIG_INNER, want), rtol=1e-4, atol=1e-4, err_msg=f"t={t}")
    del log_b, out


@pytest.mark.parametrize("method", ["sequential", "chunked", "blelloch"])
def test_64bit_indexing_backward(method):
    """scan_backward past 2^31 elements: the fused backward of sequential and chunked (lookback's too) and the
    composed one of the textbook methods (blelloch), against a closed form.

    log a = c = -1/16 (exact in float32), log b = 0 and g = 1 are constant zero-stride arrays, so only log_h
    (the forward's output) and the two gradients take memory. With a = e^c and h_s = (1 - a^(s+1)) / (1 - a):
    grad_log_b_t = sum_{s >= t} a^(s-t) / h_s and grad_log_a_t = a h_{t-1} grad_log_b_t (h_{-1} = 0).
    A decay of 16 steps keeps the float32 adjoint's error near 1e-6. Outputs are filled with NaN first.
    """
    shape = (1, BIG_T, BIG_INNER)
    workspace = backend.workspace_size("log_scan_backward", np.float32, *shape, method)
    _skip_unless_free(3 * BIG_BYTES + workspace, f"the {method} backward at 2^31 elements")
    c = -1.0 / 16
    log_a, log_b, g = _Constant(c, shape), _Constant(0.0, shape), _Constant(1.0, shape)
    log_h = cuda.device_array(shape, np.float32)
    _fill(log_h, np.nan)
    logscan.scan(log_a, log_b, axis=1, method="chunked", backend=BACKEND, out=log_h)
    grads = (cuda.device_array(shape, np.float32), cuda.device_array(shape, np.float32))
    for x in grads:
        _fill(x, np.nan)
    got = logscan.scan_backward(g, log_a, log_b, log_h, axis=1, method=method, backend=BACKEND, out=grads)
    assert got[0] is grads[0] and got[1] is grads[1] and got[2] is None
    a = math.exp(c)
    for t in (0, 1, 50, BIG_T // 2, BIG_T - 3, BIG_T - 2, BIG_T - 1):
        s = np.arange(t, min(t + 2000, BIG_T), dtype=np.float64)  # a^2000 = e^-125: the rest is nothing
        h = -np.expm1((s + 1) * c) / -math.expm1(c)
        want_b = float(np.sum(a ** (s - t) / h))
        h_prev = 0.0 if t == 0 else -math.expm1(t * c) / -math.expm1(c)
        for name, x, want in (("grad_log_a", grads[0], a * h_prev * want_b), ("grad_log_b", grads[1], want_b)):
            row = x[0, t].copy_to_host()
            np.testing.assert_allclose(row, np.full(BIG_INNER, want), rtol=1e-4, atol=1e-5, err_msg=f"{name} t={t}")
    del log_h, grads, got


def test_numpy_round_trip_and_family():
    a, b, _ = _inputs((2, 300, 3), np.float32, seed=4)
    got = logscan.scan(a, b, axis=1, backend=BACKEND)
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, reference.scan(a, b, axis=1), rtol=1e-5, atol=1e-5)


def test_numba_stream_and_interface_stream():
    a, b, _ = _inputs((4, 2000, 8), np.float32, seed=5)
    stream = cuda.stream()
    d_a, d_b = cuda.to_device(a, stream=stream), cuda.to_device(b, stream=stream)
    out = logscan.scan(d_a, d_b, axis=1, backend=BACKEND, stream=stream, method="chunked")
    host = out.copy_to_host(stream=stream)
    stream.synchronize()
    np.testing.assert_allclose(host, reference.scan(a, b, axis=1), rtol=1e-5, atol=1e-5)


def test_cupy_arrays_and_streams():
    cupy = pytest.importorskip("cupy")
    a, b, h0 = _inputs((2, 3000, 16), np.float32, seed=6)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        c_a, c_b, c_h0 = cupy.asarray(a), cupy.asarray(b), cupy.asarray(h0)
    got = logscan.scan(c_a, c_b, axis=1, log_h0=c_h0, backend=BACKEND, stream=stream)
    stream.synchronize()
    assert isinstance(got, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(got), reference.scan(a, b, axis=1, log_h0=h0), rtol=1e-5, atol=1e-5)
    out = cupy.empty_like(c_b)
    assert logscan.scan(c_a, c_b, axis=1, backend=BACKEND, out=out) is out
    g = cupy.ones_like(out)
    grads = logscan.scan_backward(g, c_a[:1], c_b, out, axis=1, backend=BACKEND)  # broadcast log_a
    assert isinstance(grads[0], cupy.ndarray) and grads[0].shape == (1, 3000, 16)


def _slow_copy(src, dst, sleeps):
    """dst = src after ``sleeps`` naps of about 1 ms (``nanosleep`` takes between 0 and 2 ms) in every thread."""
    for _ in range(sleeps):
        cuda.nanosleep(1000000)
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < dst.size:
        dst[i] = src[i]
        i += stride


@functools.cache
def _slow_copy_kernel():
    return cuda.jit(_slow_copy)


@pytest.mark.parametrize("how", ["interface-stream", "stream-argument"])
def test_non_blocking_stream_orders_the_scan_after_earlier_work(how):
    """Work already queued on a non-blocking stream (which never waits for the legacy default stream, nor it
    for this one) must finish before the scan reads its result.

    A slow kernel (about 200 ms of sleeps) writes log_b on the stream; then the scan is called either inside
    ``with stream:`` and with no ``stream=`` (CuPy's ``__cuda_array_interface__`` names the current stream, so
    the scan must follow it) or outside it with ``stream=stream`` (the interfaces then name the legacy stream,
    which the argument overrides). A scan left on another stream would read the zeros log_b held before.
    """
    cupy = pytest.importorskip("cupy")
    a, b, _ = _inputs((2, 3000, 16), np.float32, seed=8)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        c_a, source = cupy.asarray(a), cupy.asarray(b)
        c_b = cupy.empty_like(source)
    launch = _slow_copy_kernel()[32, 256, cuda.external_stream(stream.ptr)]
    src, dst = (cuda.as_cuda_array(x.reshape(-1), sync=False) for x in (source, c_b))  # views, no copies
    launch(src, dst, 0)  # compiled before the timed run
    with stream:
        logscan.scan(c_a, source, axis=1, method="chunked", backend=BACKEND)  # the scan's kernels too
        c_b.fill(0)
    stream.synchronize()
    launch(src, dst, 200)
    assert not stream.done, "the slow kernel ended before the scan was called: this test could not tell"
    if how == "interface-stream":
        with stream:
            got = logscan.scan(c_a, c_b, axis=1, method="chunked", backend=BACKEND)
    else:
        got = logscan.scan(c_a, c_b, axis=1, method="chunked", backend=BACKEND, stream=stream)
    stream.synchronize()
    np.testing.assert_allclose(cupy.asnumpy(got), reference.scan(a, b, axis=1), rtol=1e-5, atol=1e-5)


def test_device_id_of_a_numba_device_array():
    """A Numba device array declares no device (no ``__dlpack_device__``, no ``.device``): its pointer's."""
    from logscan import _device  # noqa: PLC0415

    for ordinal in range(min(len(cuda.gpus), 2)):  # one GPU: just 0
        with cuda.gpus[ordinal]:
            x = cuda.device_array((2, 3), np.float32)
            ptr = x.__cuda_array_interface__["data"][0]
            assert _device._device_id(x, ptr) == ordinal
            assert _device._describe("f", "x", x).device == ordinal


def test_torch_tensors():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    a, b, _ = _inputs((2, 500, 4), np.float32, seed=7)
    t_a, t_b = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
    got = logscan.scan(t_a, t_b, axis=1, backend=BACKEND, stream=torch.cuda.current_stream())
    assert isinstance(got, torch.Tensor) and got.is_cuda
    np.testing.assert_allclose(got.cpu().numpy(), reference.scan(a, b, axis=1), rtol=1e-5, atol=1e-5)


def test_arrays_on_two_devices():
    if len(cuda.gpus) < 2:
        pytest.skip("needs two GPUs")
    with cuda.gpus[0]:
        a = cuda.to_device(np.zeros((1, 4), np.float32))
    with cuda.gpus[1]:
        b = cuda.to_device(np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="different devices"):
        logscan.scan(a, b, backend=BACKEND)
