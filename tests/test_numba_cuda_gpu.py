"""numba_cuda backend on a real GPU (marked ``gpu``; skipped cleanly without one).

Run on a GPU machine with ``tools/gpu_check.sh`` or
``PYTHONPATH=. python -m pytest -m gpu tests/test_numba_cuda_gpu.py``.
"""

from __future__ import annotations

import math
import os

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


@pytest.mark.parametrize("method", ["chunked", "sequential", "blelloch"])
def test_T_2_to_24(method):
    """One channel, T = 2^24: head and tail against the reference (the tail restarted from the state before it)."""
    T = 1 << 24
    a, b, _ = _inputs((1, T, 1), np.float32, seed=3)
    got = logscan.scan(cuda.to_device(a), cuda.to_device(b), axis=1, method=method, backend=BACKEND).copy_to_host()
    head = reference.scan(a[:, :4096], b[:, :4096], axis=1)
    np.testing.assert_allclose(got[:, :4096], head, rtol=1e-4, atol=1e-4)
    tail = reference.scan(a[:, -4096:], b[:, -4096:], axis=1, log_h0=got[:, -4097].astype(np.float64))
    np.testing.assert_allclose(got[:, -4096:], tail, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["sequential", "chunked"])
def test_64bit_indexing(method):
    """outer*T*inner >= 2^31: elements past 2^31 are where the closed form says.

    log_a is a broadcast constant, log_b = 0, so h_t = (1 - a^(t+1)) / (1 - a) exactly in float64.
    """
    free, _total = cuda.current_context().get_memory_info()
    inner, T = 64, (1 << 25) + 3
    nbytes = 4 * inner * T
    if free < 2.5 * nbytes:
        pytest.skip(f"needs {2.5 * nbytes / 2**30:.0f} GiB free on the GPU")
    log_a_value = -1e-3
    log_a = cuda.to_device(np.full((1, 1, 1), log_a_value, np.float32))
    log_b = cuda.device_array((1, T, inner), np.float32)
    from logscan.backends.numba_cuda._memory import DeviceView  # noqa: PLC0415

    DeviceView(log_b.__cuda_array_interface__["data"][0], log_b.shape, None, np.float32)[...] = 0.0
    cuda.synchronize()
    out = logscan.scan(log_a, log_b, axis=1, method=method, backend=BACKEND)
    for t in (0, 1000, T // 2, T - 2, T - 1):
        want = math.log(-math.expm1((t + 1) * np.float64(np.float32(log_a_value)))) - math.log(
            -math.expm1(np.float64(np.float32(log_a_value))))
        row = out[0, t].copy_to_host()
        np.testing.assert_allclose(row, np.full(inner, want), rtol=1e-4, atol=1e-4)


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
