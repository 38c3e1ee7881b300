"""Every error path of the front door: the right exception, the function's name, expected vs got."""

from __future__ import annotations

import re

import numpy as np
import pytest

import logscan
from logscan import registry

X = np.zeros((2, 5))
X32 = np.zeros((2, 5), np.float32)


class FakeDeviceArray:
    """Only ``__cuda_array_interface__``: what a CuPy array, a torch CUDA tensor or a Numba device array expose."""

    def __init__(self, shape=(2, 5), typestr="<f8"):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "data": (0, False), "version": 3}


class FakeDLPackArray:
    """A DLPack producer on a device logscan does not know (type 4 = OpenCL)."""

    def __dlpack__(self, stream=None):
        raise AssertionError("never consumed")

    def __dlpack_device__(self):
        return (4, 0)


def _call(function, first=X, second=X, grad=X, value=X, **kwargs):
    """Call ``logscan.<function>`` with valid defaults for every array argument it takes."""
    if function == "logcumsumexp":
        return logscan.logcumsumexp(second, **kwargs)
    if function.endswith("_backward"):
        return getattr(logscan, function)(grad, first, second, value, **kwargs)
    return getattr(logscan, function)(first, second, **kwargs)


FIRST = {"scan": "log_a", "linear_scan": "a", "scan_backward": "log_a", "linear_scan_backward": "a"}
SECOND = {"scan": "log_b", "linear_scan": "b", "logcumsumexp": "x", "scan_backward": "log_b",
          "linear_scan_backward": "b"}
STATE = {"scan": "log_h0", "linear_scan": "h0", "scan_backward": "log_h0", "linear_scan_backward": "h0"}
WITH_OUT = ("scan", "linear_scan", "logcumsumexp")
ALL = ["scan", "linear_scan", "logcumsumexp", "scan_backward", "linear_scan_backward"]


def _prefix(function):
    return rf"^logscan\.{function}: "


# ------------------------------------------------------------ inputs
BAD_DTYPES = [np.int32, np.int64, np.uint8, np.complex64, np.complex128, object, bool, "U3", "datetime64[s]"]


@pytest.mark.parametrize("function", ALL)
@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
def test_non_float_dtypes_are_rejected(function, dtype):
    bad = np.zeros((2, 5), dtype)
    with pytest.raises(TypeError, match=_prefix(function) + rf"{SECOND[function]} must have a real floating dtype "
                                        rf"\(float16, float32 or float64\), got {re.escape(str(np.dtype(dtype)))}"):
        _call(function, second=bad)
    if function in FIRST:
        with pytest.raises(TypeError, match=_prefix(function) + rf"{FIRST[function]} must have a real floating dtype"):
            _call(function, first=bad)


@pytest.mark.parametrize("function", ALL)
@pytest.mark.parametrize("value", [[0.0, 1.0], (0.0, 1.0), 1.0, 3, None, "x"], ids=["list", "tuple", "float", "int",
                                                                                   "None", "str"])
def test_non_arrays_are_rejected(function, value):
    with pytest.raises(TypeError, match=_prefix(function) + rf"{SECOND[function]} must be an array \(numpy.ndarray, "
                                        rf"or an object with __array_interface__.*got {type(value).__name__}"):
        _call(function, second=value)


@pytest.mark.parametrize("function", ALL)
def test_zero_dimensional_inputs_are_rejected(function):
    with pytest.raises(ValueError, match=_prefix(function) + r".* must have at least one dimension to scan along, "
                                         r"got a 0-d array"):
        scalar = np.array(0.5)
        _call(function, first=scalar, second=scalar, grad=scalar, value=scalar)


@pytest.mark.parametrize("function", ["scan", "linear_scan", "scan_backward", "linear_scan_backward"])
@pytest.mark.parametrize(("shape_a", "shape_b"), [((2, 5), (2, 4)), ((2, 5), (3, 5)), ((2, 5), (5, 2)),
                                                  ((2, 5), (3, 2, 4))], ids=["T", "batch", "transposed", "ndim"])
def test_mismatched_shapes_are_rejected(function, shape_a, shape_b):
    first, second = np.zeros(shape_a), np.zeros(shape_b)
    with pytest.raises(ValueError, match=_prefix(function) + rf"{FIRST[function]} and {SECOND[function]} must have "
                                         rf"the same shape \(or broadcast together\), got "
                                         rf"{re.escape(str(shape_a))} and {re.escape(str(shape_b))}"):
        _call(function, first=first, second=second, grad=first, value=first)


@pytest.mark.parametrize("function", ["scan_backward", "linear_scan_backward"])
def test_backward_gradient_and_value_shapes_and_dtypes(function):
    grad, value = ("grad_log_h", "log_h") if function == "scan_backward" else ("grad_h", "h")
    with pytest.raises(ValueError, match=_prefix(function) + rf"{grad} must have shape \(2, 5\) \(that of .*\), "
                                         r"got \(2, 4\)"):
        _call(function, grad=np.zeros((2, 4)))
    with pytest.raises(ValueError, match=_prefix(function) + rf"{value} must have shape \(2, 5\) .*got \(5,\)"):
        _call(function, value=np.zeros(5))
    with pytest.raises(TypeError, match=_prefix(function) + rf"{grad} must have a real floating dtype"):
        _call(function, grad=np.zeros((2, 5), np.int32))
    with pytest.raises(TypeError, match=_prefix(function) + rf"{value} must be an array"):
        _call(function, value=[[0.0] * 5] * 2)


# ------------------------------------------------------------ axis
@pytest.mark.parametrize("function", ALL)
@pytest.mark.parametrize("axis", [2, -3, 100, -100])
def test_axis_out_of_bounds(function, axis):
    with pytest.raises(np.exceptions.AxisError, match=_prefix(function) + rf"axis {axis} is out of bounds for "
                                                      r"arrays of 2 dimensions"):
        _call(function, axis=axis)


@pytest.mark.parametrize("function", ALL)
@pytest.mark.parametrize("axis", [1.0, "1", None, True, np.bool_(False), [1], (0,)],
                         ids=["float", "str", "None", "bool", "numpy-bool", "list", "tuple"])
def test_axis_must_be_an_int(function, axis):
    with pytest.raises(TypeError, match=_prefix(function) + rf"axis must be an int, got {type(axis).__name__}"):
        _call(function, axis=axis)


def test_numpy_integer_axis_is_fine():
    assert logscan.scan(X, X, axis=np.int64(0)).shape == X.shape


# ------------------------------------------------------------ initial state
@pytest.mark.parametrize("function", [f for f in ALL if f in STATE])
@pytest.mark.parametrize("shape", [(3,), (5,), (2, 5), (2, 2), (1, 1, 2)], ids=lambda s: "x".join(map(str, s)))
def test_state_of_wrong_shape(function, shape):
    name = STATE[function]
    with pytest.raises(ValueError, match=_prefix(function) + rf"{name} must have shape \(2,\) \(the scanned arrays' "
                                         rf"shape without the scan axis\), got {re.escape(str(shape))}"):
        _call(function, **{name: np.zeros(shape)})


@pytest.mark.parametrize("function", [f for f in ALL if f in STATE])
def test_state_of_wrong_type_or_dtype(function):
    name = STATE[function]
    with pytest.raises(TypeError, match=_prefix(function) + rf"{name} must have a real floating dtype .*got int64"):
        _call(function, **{name: np.zeros(2, np.int64)})
    with pytest.raises(TypeError, match=_prefix(function) + rf"{name} must be an array .*got list"):
        _call(function, **{name: [0.0, 0.0]})


# ------------------------------------------------------------ out=
@pytest.mark.parametrize("function", WITH_OUT)
def test_out_of_wrong_shape(function):
    with pytest.raises(ValueError, match=_prefix(function) + r"out must have shape \(2, 5\), got \(5, 2\)"):
        _call(function, out=np.zeros((5, 2)))
    with pytest.raises(ValueError, match=_prefix(function) + r"out must have shape \(2, 5\), got \(10,\)"):
        _call(function, out=np.zeros(10))


@pytest.mark.parametrize("function", WITH_OUT)
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.complex128], ids=lambda d: np.dtype(d).name)
def test_out_of_wrong_dtype(function, dtype):
    with pytest.raises(TypeError, match=_prefix(function) + rf"out must have dtype float64, got {np.dtype(dtype)}"):
        _call(function, out=np.zeros((2, 5), dtype))


@pytest.mark.parametrize("function", WITH_OUT)
@pytest.mark.parametrize("out", [[[0.0] * 5] * 2, 0.0, "out"], ids=["list", "float", "str"])
def test_out_of_wrong_type(function, out):
    with pytest.raises(TypeError, match=_prefix(function) + rf"out must be an array .*got {type(out).__name__}"):
        _call(function, out=out)


@pytest.mark.parametrize("function", WITH_OUT)
def test_read_only_out(function):
    frozen = np.zeros((2, 5))
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=_prefix(function) + r"out is read-only"):
        _call(function, out=frozen)
    with pytest.raises(ValueError, match=_prefix(function) + r"out is read-only"):
        _call(function, out=np.broadcast_to(np.zeros(5), (2, 5)))


def test_failed_call_leaves_out_untouched():
    out = np.full((2, 5), 7.0)
    with pytest.raises(ValueError):
        logscan.scan(X, X, out=out, log_h0=np.zeros(3))
    with pytest.raises(ValueError):
        logscan.scan(X, X, out=out, method="nope")
    assert (out == 7.0).all()


# ------------------------------------------------------------ options
@pytest.mark.parametrize("function", ALL)
@pytest.mark.parametrize("reverse", [1, 0, "yes", None, 1.0, np.array(True)], ids=["1", "0", "str", "None", "float",
                                                                                   "0d-array"])
def test_reverse_must_be_a_bool(function, reverse):
    with pytest.raises(TypeError, match=_prefix(function) + rf"reverse must be a bool, got {type(reverse).__name__}"):
        _call(function, reverse=reverse)


@pytest.mark.parametrize("function", ALL)
def test_unknown_method(function):
    with pytest.raises(ValueError, match=_prefix(function) + r"unknown method 'fastest' for backend 'numpy'; "
                                         r"expected 'auto' or one of \['sequential', 'hillis_steele', 'blelloch'"):
        _call(function, method="fastest", backend="numpy")
    with pytest.raises(TypeError, match=_prefix(function) + r"method must be a str, got NoneType"):
        _call(function, method=None)


@pytest.mark.parametrize("function", ALL)
def test_unknown_backend(function):
    with pytest.raises(ValueError, match=_prefix(function) + r"unknown backend 'torch'; expected 'auto' or one of "
                                         r"\[.*'numpy'.*\]"):
        _call(function, backend="torch")
    with pytest.raises(TypeError, match=_prefix(function) + r"backend must be a str, got int"):
        _call(function, backend=0)


def test_device_backend_for_host_arrays_without_a_gpu(monkeypatch):
    # NumPy arrays given to a GPU backend are copied to the device; with no device that is a clear error.
    spec = registry.BackendSpec("fake_gpu", "logscan.backends.numpy_backend", device="cuda", priority=99,
                                probe=lambda: False)
    monkeypatch.setitem(registry._SPECS, "fake_gpu", spec)
    with pytest.raises(RuntimeError, match=r"^logscan\.scan: backend 'fake_gpu' is installed but cannot run here "
                                           r"\(no CUDA device found\)"):
        logscan.scan(X, X, backend="fake_gpu")
    assert "fake_gpu" not in logscan.available_backends()


def test_backend_with_missing_package(monkeypatch):
    spec = registry.BackendSpec("fake_cpu", "logscan.backends.numpy_backend", device="cpu", priority=99,
                                requires=("a_package_that_is_not_installed",), extra="fake")
    monkeypatch.setitem(registry._SPECS, "fake_cpu", spec)
    assert "fake_cpu" not in logscan.available_backends()
    with pytest.raises(RuntimeError, match=r"^logscan\.scan: backend 'fake_cpu' needs a_package_that_is_not_installed"
                                           r", which is not installed \(pip install 'logscan\[fake\]'\)"):
        logscan.scan(X, X, backend="fake_cpu")


def test_backend_whose_module_is_absent(monkeypatch):
    spec = registry.BackendSpec("fake_absent", "logscan.backends.not_here", device="cpu", priority=99)
    monkeypatch.setitem(registry._SPECS, "fake_absent", spec)
    assert "fake_absent" not in logscan.available_backends()
    assert logscan.scan(X, X).shape == X.shape  # auto skips it
    with pytest.raises(RuntimeError, match=r"^logscan\.scan: backend 'fake_absent' is registered but its module "
                                           r"logscan\.backends\.not_here is not part of this copy of logscan"):
        logscan.scan(X, X, backend="fake_absent")


# ------------------------------------------------------------ host and device
@pytest.mark.parametrize("function", ALL)
def test_mixing_host_and_device_arrays(function):
    device = FakeDeviceArray()
    with pytest.raises(TypeError, match=_prefix(function) + rf"cannot mix host and device arrays: .* on the CPU, "
                                        rf"{SECOND[function]} on a CUDA device; move them to one place first"):
        _call(function, second=device, out=X) if function == "logcumsumexp" else _call(function, second=device)


@pytest.mark.parametrize("function", WITH_OUT)
def test_device_out_for_host_inputs(function):
    with pytest.raises(TypeError, match=_prefix(function) + r"cannot mix host and device arrays: .* on the CPU, "
                                        r"out on a CUDA device"):
        _call(function, out=FakeDeviceArray())


@pytest.mark.parametrize("function", [f for f in ALL if f in STATE])
def test_device_state_for_host_inputs(function):
    name = STATE[function]
    with pytest.raises(TypeError, match=_prefix(function) + rf"cannot mix host and device arrays: .*{name} on a CUDA"):
        _call(function, **{name: FakeDeviceArray((2,))})


@pytest.mark.parametrize("function", ALL)
def test_swapped_byte_order_is_named(function):
    swapped = np.zeros((2, 5), np.dtype(np.float32).newbyteorder("S"))
    with pytest.raises(TypeError, match=_prefix(function) + rf"{SECOND[function]} must be in the machine's byte "
                                        rf"order, got {re.escape(str(swapped.dtype))} \(swapped\); convert it with "
                                        rf"{SECOND[function]}\.astype\('float32'\)"):
        _call(function, second=swapped)


@pytest.mark.parametrize("function", ALL)
def test_masked_elements_are_refused_not_ignored(function):
    masked = np.ma.masked_array(np.zeros((2, 5)), mask=np.eye(2, 5, dtype=bool))
    name = SECOND[function]
    with pytest.raises(TypeError, match=rf"^logscan\.{function}: {name} is a masked array with masked elements, "
                                        rf"and logscan reads every element; pass {name}\.filled\(value\)"):
        _call(function, second=masked)
    unmasked = np.ma.masked_array(np.ones((2, 5)), mask=False)  # nothing masked: its data, as a plain array
    got, want = _call(function, second=unmasked), _call(function, second=np.ones((2, 5)))
    for g, w in zip(*((r,) if isinstance(r, np.ndarray) else r for r in (got, want)), strict=True):
        np.testing.assert_array_equal(g, w)


def test_unknown_dlpack_device():
    with pytest.raises(TypeError, match=r"^logscan\.scan: log_b lives on DLPack device type 4, which logscan does "
                                        r"not support \(expected CPU or CUDA\)"):
        logscan.scan(X, FakeDLPackArray())


def test_registry_load_of_unknown_name():
    with pytest.raises(ValueError, match=r"^tests: unknown backend 'nope'; expected 'auto' or one of"):
        registry.load("nope", caller="tests")


def test_auto_backend_choice_follows_changes_to_the_registry(monkeypatch):
    # "auto" is chosen once per device and kept (checking availability costs more than a small scan),
    # but any change to the registered backends makes it choose again.
    before, _ = registry.resolve("auto", "cpu")
    spec = registry.BackendSpec("fake_preferred", "logscan.backends.numpy_backend", device="cpu", priority=10**6)
    monkeypatch.setitem(registry._SPECS, "fake_preferred", spec)
    assert registry.resolve("auto", "cpu")[0] == "fake_preferred"
    monkeypatch.setitem(registry._SPECS, "fake_preferred",
                        registry.BackendSpec("fake_preferred", "logscan.backends.not_here", device="cpu",
                                             priority=10**6))
    assert registry.resolve("auto", "cpu")[0] == before   # the replaced spec cannot run: auto skips it
    monkeypatch.undo()
    assert registry.resolve("auto", "cpu")[0] == before
