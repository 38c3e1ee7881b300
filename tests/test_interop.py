"""Framework interop at the GPU front door: DLPack-only arrays, families in and out, streams, devices.

The decisions (host or device, which family, how results go back) are pure
functions tested here with tiny fake classes; nothing below needs a GPU
except the tests marked ``gpu``, which round-trip real CuPy, torch and JAX
arrays through :func:`logscan.scan` (``tools/gpu_check.sh`` runs them).
"""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import pytest

import logscan
from logscan import _arrays, _device, registry
from logscan._device import Route

X = np.zeros((2, 5))
KDL_CPU, KDL_CUDA, KDL_CUDA_MANAGED = 1, 2, 13


# ------------------------------------------------------------ fake arrays
class FakeDLPack:
    """Only ``__dlpack__`` + ``__dlpack_device__``: what a JAX GPU array exposes to a consumer."""

    def __init__(self, kind=KDL_CUDA, index=0):
        self.kind, self.index = kind, index

    def __dlpack__(self, stream=None):
        raise AssertionError("never consumed in these tests")

    def __dlpack_device__(self):
        return (self.kind, self.index)


def _fake_in(module, base=FakeDLPack):
    """A subclass of ``base`` that says it comes from ``module`` (what the family decision reads)."""
    return type("Array", (base,), {"__module__": module})


FakeJax = _fake_in("jaxlib.xla_extension")
FakeOther = _fake_in("otherlib.arrays")


class FakeCAI:
    """Only ``__cuda_array_interface__``: a CuPy array, torch CUDA tensor or Numba device array."""

    def __init__(self, shape=(2, 5)):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": "<f8", "data": (0, False), "version": 3}


class FakeHostDLPack:
    """A CPU DLPack producer with no ``__array_interface__``, which NumPy can import."""

    def __init__(self, array):
        self.array = array

    def __dlpack__(self, stream=None, **kwargs):
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return (KDL_CPU, 0)


class BrokenHostDLPack(FakeDLPack):
    def __init__(self):
        super().__init__(KDL_CPU, 0)

    def __dlpack__(self, stream=None, **kwargs):
        raise BufferError("this producer cannot export")


class FakeStream:
    """Only ``__cuda_stream__``: the stream protocol of cuda.core (and newer CuPy/torch)."""

    def __init__(self, handle, as_method=True):
        if as_method:
            self.__cuda_stream__ = lambda: (0, handle)
        else:
            self.__cuda_stream__ = (0, handle)


@pytest.fixture
def fake_gpu_backend(monkeypatch):
    """A GPU backend that resolves without a GPU, so that the device front door's own checks run."""
    import logscan.backends.numpy_backend as module  # noqa: PLC0415

    spec = registry.BackendSpec("fake_gpu_ok", "logscan.backends.numpy_backend", device="cuda", priority=-1,
                                probe=lambda: True)
    monkeypatch.setitem(registry._SPECS, "fake_gpu_ok", spec)
    monkeypatch.setitem(registry._LOADED, "fake_gpu_ok", module)
    return "fake_gpu_ok"


@pytest.fixture
def no_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError


# ------------------------------------------------------------ detection
@pytest.mark.parametrize(("x", "device"), [
    (FakeDLPack(KDL_CUDA), "cuda"), (FakeDLPack(KDL_CUDA_MANAGED), "cuda"), (FakeDLPack(KDL_CPU), "cpu"),
    (FakeCAI(), "cuda"), (X, "cpu"),
], ids=["dlpack-cuda", "dlpack-managed", "dlpack-cpu", "cai", "numpy"])
def test_device_of(x, device):
    assert _arrays.device_of("logscan.scan", "log_b", x) == device
    assert _device.is_device_array(x) == (device == "cuda")


def test_dlpack_device_reads_type_and_id():
    assert _arrays.dlpack_device(FakeDLPack(KDL_CUDA, 3)) == (KDL_CUDA, 3)
    assert _arrays.dlpack_device(FakeCAI()) is None
    assert _arrays.is_cuda_dlpack(FakeDLPack(KDL_CUDA_MANAGED, 0))
    assert not _arrays.is_cuda_dlpack(FakeDLPack(KDL_CPU, 0))


# ------------------------------------------------------------ the family decision
class _Cupy(FakeCAI):
    __module__ = "cupy._core.core"


class _Torch(FakeCAI):
    __module__ = "torch"


class _JaxWithCAI(FakeCAI):
    __module__ = "jaxlib.xla_extension"


@pytest.mark.parametrize(("x", "want"), [
    (_Cupy(), Route("cupy", "cai", "cupy", None)),
    (_Torch(), Route("torch", "cai", "torch", None)),
    (FakeCAI(), Route("numba", "cai", "numba", None)),
    (FakeJax(), Route("jax", "dlpack", "cupy", "jax.numpy:from_dlpack")),
    (_fake_in("jax._src.array")(), Route("jax", "dlpack", "cupy", "jax.numpy:from_dlpack")),
    (_JaxWithCAI(), Route("jax", "cai", "cupy", "jax.numpy:from_dlpack")),
    (FakeOther(), Route("otherlib", "dlpack", "cupy", "otherlib:from_dlpack")),
    (_fake_in("torch")(), Route("torch", "dlpack", "torch", None)),
], ids=["cupy", "torch", "numba", "jax-dlpack", "jax-src", "jax-cai", "other-dlpack", "torch-dlpack"])
def test_route(x, want):
    assert _device.route(x) == want


def test_route_of_a_host_array_is_an_error():
    with pytest.raises(TypeError, match=r"^logscan: FakeDLPack is not a device array"):
        _device.route(FakeDLPack(KDL_CPU))


def test_give_back_functions(monkeypatch):
    assert _device._give_back_function(Route("numba", "cai", "numba", None)) is None
    assert _device._give_back_function(Route("x", "dlpack", "cupy", "numpy:from_dlpack")) is np.from_dlpack
    # a family whose module has no from_dlpack (or is not importable) gets CuPy arrays as they are
    assert _device._give_back_function(Route("math", "dlpack", "cupy", "math:from_dlpack")) is None
    assert _device._give_back_function(Route("nope", "dlpack", "cupy", "not_a_module_here:from_dlpack")) is None


def test_family_gives_results_back_through_the_family_from_dlpack(monkeypatch):
    family_module = types.ModuleType("otherlib")
    family_module.from_dlpack = lambda obj: ("otherlib array of", obj)
    monkeypatch.setitem(sys.modules, "otherlib", family_module)
    family = _device._Family(FakeOther(), device=0, stream=None)
    assert family.kind == "cupy"
    assert family.give_back("buffer") == ("otherlib array of", "buffer")
    assert family.give_back(None) is None
    assert _device._Family(FakeCAI(), device=0, stream=None).give_back("buffer") == "buffer"


def test_as_cai_takes_dlpack_only_arrays_through_cupy_from_dlpack(monkeypatch):
    seen = []
    fake_cupy = types.ModuleType("cupy")
    fake_cupy.from_dlpack = lambda x: seen.append(x) or FakeCAI()
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    x = FakeJax()
    view, found = _device._as_cai("logscan.scan", "log_a", x)
    assert seen == [x] and isinstance(view, FakeCAI) and found.family == "jax"
    cai = _Cupy()
    assert _device._as_cai("logscan.scan", "log_a", cai) == (cai, Route("cupy", "cai", "cupy", None))
    assert seen == [x]  # CAI arrays are taken as they are


# ------------------------------------------------------------ errors
def test_mixing_host_and_dlpack_device_arrays():
    with pytest.raises(TypeError, match=r"^logscan\.scan: cannot mix host and device arrays: log_a on the CPU, "
                                        r"log_b on a CUDA device; move them to one place first"):
        logscan.scan(X, FakeDLPack())


def test_mixing_dlpack_device_state_with_host_inputs():
    with pytest.raises(TypeError, match=r"^logscan\.scan_backward: cannot mix host and device arrays: .* on the "
                                        r"CPU, log_h0 on a CUDA device"):
        logscan.scan_backward(X, X, X, X, log_h0=FakeDLPack())


def test_numpy_with_gpu_backend_and_dlpack_device_array(fake_gpu_backend):
    with pytest.raises(TypeError, match=r"^logscan\.scan: cannot mix host and device arrays: log_a on the CPU, "
                                        r"log_b on a CUDA device"):
        logscan.scan(X, FakeDLPack(), backend=fake_gpu_backend)


def test_dlpack_arrays_on_different_devices(fake_gpu_backend, no_cupy):
    # checked from __dlpack_device__ before any import: no CuPy needed to get this message
    with pytest.raises(ValueError, match=r"^logscan\.scan: arrays are on different devices \(log_a on cuda:0, "
                                         r"log_b on cuda:1\); move them to one device first"):
        logscan.scan(FakeDLPack(index=0), FakeDLPack(index=1), backend=fake_gpu_backend)
    with pytest.raises(ValueError, match=r"^logscan\.scan_backward: arrays are on different devices "
                                         r"\(grad_log_h on cuda:0, log_a on cuda:0, log_b on cuda:0, "
                                         r"log_h on cuda:0, log_h0 on cuda:2\)"):
        logscan.scan_backward(FakeDLPack(), FakeDLPack(), FakeDLPack(), FakeDLPack(), log_h0=FakeDLPack(index=2),
                              backend=fake_gpu_backend)


def test_dlpack_only_cuda_array_without_cupy(fake_gpu_backend, no_cupy):
    with pytest.raises(RuntimeError, match=r"^logscan\.scan: log_a is a jaxlib\.xla_extension\.Array on a CUDA "
                                           r"device \(only __dlpack__\); taking it zero-copy needs CuPy, which is "
                                           r"not installed: pip install 'logscan\[cuda12\]'"):
        logscan.scan(FakeJax(), FakeJax(), backend=fake_gpu_backend)


def test_jax_array_with_cai_without_cupy(fake_gpu_backend, no_cupy):
    with pytest.raises(RuntimeError, match=r"^logscan\.scan: log_a is a jaxlib\.xla_extension\._JaxWithCAI on a "
                                           r"CUDA device \(a jax array\); giving results back in its family needs "
                                           r"CuPy"):
        logscan.scan(_JaxWithCAI(), _JaxWithCAI(), backend=fake_gpu_backend)


def test_dlpack_only_torch_like_array_without_cupy(fake_gpu_backend, no_cupy):
    # allocated by torch, but taken in through cupy.from_dlpack: still a clear message, not a NameError
    with pytest.raises(RuntimeError, match=r"^logscan\.scan: log_a is a torch\.Array on a CUDA device \(only "
                                           r"__dlpack__\); taking it zero-copy needs CuPy"):
        logscan.scan(_fake_in("torch")(), _fake_in("torch")(), backend=fake_gpu_backend)


def test_logcumsumexp_of_dlpack_only_array_without_cupy(no_cupy):
    with pytest.raises(RuntimeError, match=r"^logscan\.logcumsumexp: x is a otherlib\.arrays\.Array on a CUDA "
                                           r"device \(only __dlpack__\); taking it zero-copy needs CuPy"):
        logscan.logcumsumexp(FakeOther())


def test_jax_out_is_refused(fake_gpu_backend, no_cupy):
    with pytest.raises(TypeError, match=r"^logscan\.scan: out cannot be a JAX array \(JAX arrays are immutable\); "
                                        r"leave out=None"):
        logscan.scan(FakeJax(), FakeJax(), out=FakeJax(), backend=fake_gpu_backend)


def test_jax_backward_out_is_refused(fake_gpu_backend, no_cupy):
    with pytest.raises(TypeError, match=r"^logscan\.scan_backward: out\[0\] cannot be a JAX array \(JAX arrays "
                                        r"are immutable\)"):
        logscan.scan_backward(FakeJax(), FakeJax(), FakeJax(), FakeJax(), out=(FakeJax(), FakeJax()),
                              backend=fake_gpu_backend)


def test_torch_cpu_tensors_as_backward_out():
    torch = pytest.importorskip("torch")
    log_a, log_b, g = torch.randn(2, 9) - 1, torch.randn(2, 9), torch.randn(2, 9)
    log_h = logscan.scan(log_a, log_b)
    want = logscan.scan_backward(g, log_a, log_b, log_h)
    out = (torch.empty(2, 9), torch.empty(2, 9))
    got = logscan.scan_backward(g, log_a, log_b, log_h, out=out)
    assert got[0] is out[0] and got[1] is out[1] and got[2] is None
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_cpu_dlpack_array_numpy_cannot_import():
    with pytest.raises(TypeError, match=r"^logscan\.scan: log_b is a CPU DLPack array that NumPy cannot import "
                                        r"zero-copy \(BufferError: this producer cannot export\); pass a "
                                        r"numpy\.ndarray instead"):
        logscan.scan(X, BrokenHostDLPack())
    with pytest.raises(TypeError, match=r"^logscan\.logcumsumexp: x is a CPU DLPack array that NumPy cannot"):
        logscan.logcumsumexp(BrokenHostDLPack())


def test_cpu_dlpack_array_is_scanned_on_the_host():
    log_a = np.log(np.full((2, 5), 0.5))
    log_b = np.zeros((2, 5))
    got = logscan.scan(FakeHostDLPack(log_a), FakeHostDLPack(log_b), axis=1)
    np.testing.assert_allclose(got, logscan.scan(log_a, log_b, axis=1))


def test_unknown_dlpack_device_type():
    with pytest.raises(TypeError, match=r"^logscan\.scan: log_b lives on DLPack device type 4, which logscan does "
                                        r"not support \(expected CPU or CUDA\)"):
        logscan.scan(X, FakeDLPack(kind=4))


# ------------------------------------------------------------ streams
@pytest.mark.parametrize("as_method", [True, False], ids=["method", "attribute"])
def test_cuda_stream_protocol(as_method):
    assert _device.stream_handle("logscan.scan", FakeStream(1234, as_method)) == 1234
    assert _device.stream_handle("logscan.scan", FakeStream(None, as_method)) == 0


def test_cuda_stream_protocol_with_a_bad_handle():
    with pytest.raises(TypeError, match=r"^logscan\.scan: stream handle must be an int, got str"):
        _device.stream_handle("logscan.scan", FakeStream("default"))
    with pytest.raises(ValueError, match=r"^logscan\.scan: stream handle must be non-negative, got -1"):
        _device.stream_handle("logscan.scan", FakeStream(-1))


def test_stream_for_host_dlpack_arrays_is_refused():
    with pytest.raises(ValueError, match=r"^logscan\.scan: stream= applies to GPU arrays and GPU backends only"):
        logscan.scan(FakeHostDLPack(X), FakeHostDLPack(X), stream=FakeStream(7))


# ------------------------------------------------------------ on a GPU
def _gpu_ready():
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return False
    try:
        from numba import cuda  # noqa: PLC0415

        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


needs_gpu = pytest.mark.skipif("not _gpu_ready()", reason="no CUDA GPU available")


def _inputs(shape=(2, 300, 4), seed=0):
    rng = np.random.default_rng(seed)
    log_a = np.log(rng.uniform(0.5, 1.0, shape)).astype(np.float32)
    log_b = rng.standard_normal(shape).astype(np.float32)
    return log_a, log_b


class DLPackOnly:
    """Hides everything of a device array but its DLPack protocol (a stand-in for a JAX GPU array)."""

    __module__ = "dlpackfamily.arrays"

    def __init__(self, array):
        self._array = array

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


@pytest.mark.gpu
@needs_gpu
def test_dlpack_only_cupy_arrays_round_trip(monkeypatch):
    cupy = pytest.importorskip("cupy")
    family_module = types.ModuleType("dlpackfamily")
    family_module.from_dlpack = lambda obj: DLPackOnly(cupy.from_dlpack(obj))
    monkeypatch.setitem(sys.modules, "dlpackfamily", family_module)
    log_a, log_b = _inputs()
    d_a, d_b = DLPackOnly(cupy.asarray(log_a)), DLPackOnly(cupy.asarray(log_b))
    got = logscan.scan(d_a, d_b, axis=1)
    assert isinstance(got, DLPackOnly)
    want = logscan.scan(log_a, log_b, axis=1, backend="numpy")
    np.testing.assert_allclose(cupy.asnumpy(cupy.from_dlpack(got)), want, rtol=1e-5, atol=1e-5)
    grads = logscan.scan_backward(DLPackOnly(cupy.ones_like(cupy.asarray(log_b))), d_a, d_b, got, axis=1)
    assert all(isinstance(g, DLPackOnly) for g in grads[:2]) and grads[2] is None
    assert isinstance(logscan.logcumsumexp(d_b, axis=1), DLPackOnly)


@pytest.mark.gpu
@needs_gpu
def test_torch_cuda_tensors_round_trip():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    log_a, log_b = _inputs(seed=1)
    t_a, t_b = torch.from_numpy(log_a).cuda(), torch.from_numpy(log_b).cuda()
    got = logscan.scan(t_a, t_b, axis=1, stream=torch.cuda.current_stream())
    assert isinstance(got, torch.Tensor) and got.is_cuda
    want = logscan.scan(log_a, log_b, axis=1, backend="numpy")
    np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-5, atol=1e-5)
    grads = logscan.scan_backward(torch.ones_like(got), t_a, t_b, got, axis=1)
    assert all(isinstance(g, torch.Tensor) and g.is_cuda for g in grads[:2])


@pytest.mark.gpu
@needs_gpu
def test_jax_gpu_arrays_round_trip():
    pytest.importorskip("cupy")  # DLPack-only arrays come in through cupy.from_dlpack
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    try:
        gpu = jax.devices("gpu")[0]
    except RuntimeError:
        pytest.skip("jax without a GPU")
    log_a, log_b = _inputs(seed=2)
    j_a, j_b = jax.device_put(jnp.asarray(log_a), gpu), jax.device_put(jnp.asarray(log_b), gpu)
    got = logscan.scan(j_a, j_b, axis=1)
    assert isinstance(got, jax.Array)
    assert got.devices() == {gpu}
    want = logscan.scan(log_a, log_b, axis=1, backend="numpy")
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    grads = logscan.scan_backward(jnp.ones_like(got), j_a, j_b, got, axis=1)
    assert all(isinstance(g, jax.Array) for g in grads[:2])
    assert isinstance(logscan.logcumsumexp(j_b, axis=1), jax.Array)


def test_misaligned_cuda_array_is_refused(fake_gpu_backend):
    """A CUDA array whose data pointer is not element-aligned (a raw interface can say so) never reaches a kernel."""
    misaligned = FakeCAI((2, 5))
    misaligned.__cuda_array_interface__["data"] = (0x1004, False)  # float64 data 4 bytes off
    with pytest.raises(ValueError, match=r"^logscan\.scan: log_a starts at 0x1004, not a multiple of its itemsize 8"):
        logscan.scan(misaligned, FakeCAI((2, 5)), backend=fake_gpu_backend)
