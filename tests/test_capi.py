"""The C-style core on raw pointers: two-phase workspace, strides of any sign, reverse, half-precision staging
(float16, bfloat16), errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from logscan import capi, reference
from tests.helpers import FLOATS, assert_close, assert_same_bits, linear_inputs, log_inputs, tolerance

OPS = ("log_scan", "log_scan_backward", "linear_scan", "linear_scan_backward")
DTYPE_IDS = [pytest.param(d, id=np.dtype(d).name) for d in FLOATS]
WITH_BFLOAT16 = DTYPE_IDS + [pytest.param("bfloat16", id="bfloat16")]


def as_dtype(dtype):
    """The NumPy dtype of a test's dtype; "bfloat16" is ml_dtypes' (the test is skipped without ml_dtypes)."""
    if dtype == "bfloat16":
        return np.dtype(pytest.importorskip("ml_dtypes", reason="bfloat16 arrays need ml_dtypes").bfloat16)
    return np.dtype(dtype)


def close(got, want, dtype, T, **options):
    """:func:`assert_close`; bfloat16 (no np.finfo) as float16 is: its compute dtype's tolerance (float32) plus
    its final rounding, one bfloat16 eps (2^-7)."""
    if dtype.name == "bfloat16":
        options["tol"] = tolerance(np.float32, T) + 2.0**-7
        dtype = np.dtype(np.float32)
    assert_close(got, want, dtype, T, **options)


@pytest.fixture
def carvers(monkeypatch):
    """Every workspace carver a call makes, kept to compare what it carved with ``workspace_size``."""
    made = []

    class Recording(capi._Carver):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(capi, "_Carver", Recording)
    return made


def ptr(x):
    return x.__array_interface__["data"][0]


def strides(x):
    return tuple(s // x.itemsize for s in x.strides)


def workspace(op, shape, dtype, method, backend):
    outer, T, inner = shape
    nbytes = capi.workspace_size(op, outer=outer, T=T, inner=inner, dtype=np.dtype(dtype).name, method=method,
                                 backend=backend)
    assert isinstance(nbytes, int) and nbytes >= 0
    buffer = np.empty(nbytes, np.uint8)
    return dict(workspace=ptr(buffer) if nbytes else 0, workspace_bytes=nbytes), buffer


def call_log_scan(log_a, log_b, out, *, log_h0=None, reverse=False, method, backend, ws=None):
    """capi.log_scan on (outer, T, inner) NumPy views, passing only pointers and element strides."""
    kw, _keep = workspace("log_scan", log_b.shape, log_b.dtype, method, backend) if ws is None else (ws, None)
    extra = {} if log_h0 is None else dict(log_h0=ptr(log_h0), log_h0_strides=strides(log_h0))
    outer, T, inner = log_b.shape
    capi.log_scan(outer=outer, T=T, inner=inner, dtype=log_b.dtype.name, log_a=ptr(log_a),
                  log_a_strides=strides(log_a), log_b=ptr(log_b), log_b_strides=strides(log_b), out=ptr(out),
                  out_strides=strides(out), reverse=reverse, method=method, backend=backend, **extra, **kw)


# ------------------------------------------------------------ two-phase workspace
@pytest.mark.parametrize("dtype", DTYPE_IDS)
@pytest.mark.parametrize("op", OPS)
def test_workspace_size_is_a_whole_aligned_byte_count(backend, method, op, dtype):
    sizes = [capi.workspace_size(op, outer=o, T=T, inner=i, dtype=np.dtype(dtype).name, method=method,
                                 backend=backend) for o, T, i in [(1, 1, 1), (3, 33, 5), (2, 1025, 1), (0, 9, 9)]]
    for n in sizes:
        assert isinstance(n, int) and n >= 0 and n % 64 == 0
    if np.dtype(dtype) == np.float16:  # float32 staging copies come on top
        single = capi.workspace_size(op, outer=3, T=33, inner=5, dtype="float32", method=method, backend=backend)
        assert sizes[1] >= single + 3 * 33 * 5 * 4


def test_workspace_size_accepts_dtype_objects_and_auto(backend):
    for dtype in (np.float32, np.dtype(np.float32), "float32"):
        assert capi.workspace_size("log_scan", outer=2, T=100, inner=3, dtype=dtype, backend=backend) >= 0
    assert capi.workspace_size("log_scan", outer=2, T=100, inner=3, dtype="float32") >= 0


@pytest.mark.parametrize("dtype", DTYPE_IDS)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_log_scan_on_pointers_matches_reference(backend, method, dtype, reverse, rng):
    log_a, log_b = log_inputs(rng, (3, 37, 4), dtype, neg_inf=0.02)
    log_h0 = rng.normal(size=(3, 4)).astype(dtype)
    out = np.full_like(log_b, np.nan)
    call_log_scan(log_a, log_b, out, log_h0=log_h0, reverse=reverse, method=method, backend=backend)
    assert_close(out, reference.scan(log_a, log_b, axis=1, log_h0=log_h0, reverse=reverse), dtype, 37)


@pytest.mark.parametrize("dtype", DTYPE_IDS)
def test_workspace_of_exactly_the_asked_size_is_enough(backend, method, dtype, rng):
    """The workspace is all the memory a call uses: a guard band after it stays untouched."""
    log_a, log_b = log_inputs(rng, (2, 45, 3), dtype)
    log_h0 = rng.normal(size=(2, 3)).astype(dtype)
    nbytes = capi.workspace_size("log_scan", outer=2, T=45, inner=3, dtype=np.dtype(dtype).name, method=method,
                                 backend=backend)
    buffer = np.full(nbytes + 256, 0xAB, np.uint8)
    out = np.empty_like(log_b)
    call_log_scan(log_a, log_b, out, log_h0=log_h0, method=method, backend=backend,
                  ws=dict(workspace=ptr(buffer), workspace_bytes=nbytes))
    assert (buffer[nbytes:] == 0xAB).all(), "the call wrote past the workspace it asked for"
    assert_close(out, reference.scan(log_a, log_b, axis=1, log_h0=log_h0), dtype, 45)


# ------------------------------------------------------------ strides
def test_negative_time_strides_read_backwards(backend, method, rng):
    """A pointer to the last element with a negative time stride is the time-reversed sequence."""
    log_a, log_b = log_inputs(rng, (2, 33, 3), np.float64)
    out = np.empty_like(log_b)
    call_log_scan(log_a[:, ::-1], log_b[:, ::-1], out[:, ::-1], method=method, backend=backend)
    assert strides(log_a[:, ::-1])[1] < 0
    expected = reference.scan(log_a[:, ::-1], log_b[:, ::-1], axis=1)[:, ::-1]
    assert_close(out, expected, np.float64, 33)
    # which is what reverse=True computes on the forward views
    reversed_out = np.empty_like(log_b)
    call_log_scan(log_a, log_b, reversed_out, reverse=True, method=method, backend=backend)
    assert_close(reversed_out, out, np.float64, 33)


def test_every_stride_negative_and_reverse(backend, method, rng):
    log_a, log_b = log_inputs(rng, (3, 40, 5), np.float32)
    out = np.empty_like(log_b)
    flip = (slice(None, None, -1),) * 3
    call_log_scan(log_a[flip], log_b[flip], out[flip], reverse=True, method=method, backend=backend)
    assert_close(out[flip], reference.scan(log_a[flip], log_b[flip], axis=1, reverse=True), np.float32, 40)


def test_broadcast_inputs_by_zero_strides(backend, method, rng):
    log_b = rng.normal(size=(2, 30, 4))
    decay = np.array([-0.25])
    out = np.empty_like(log_b)
    outer, T, inner = log_b.shape
    kw, _keep = workspace("log_scan", log_b.shape, log_b.dtype, method, backend)
    capi.log_scan(outer=outer, T=T, inner=inner, dtype="float64", log_a=ptr(decay), log_a_strides=(0, 0, 0),
                  log_b=ptr(log_b), log_b_strides=strides(log_b), out=ptr(out), out_strides=strides(out),
                  method=method, backend=backend, **kw)
    assert_close(out, reference.scan(np.full_like(log_b, -0.25), log_b, axis=1), np.float64, 30)


def test_state_with_zero_strides(backend, method, rng):
    log_a, log_b = log_inputs(rng, (2, 12, 3), np.float64)
    state = np.array([0.7])
    out = np.empty_like(log_b)
    outer, T, inner = log_b.shape
    kw, _keep = workspace("log_scan", log_b.shape, log_b.dtype, method, backend)
    capi.log_scan(outer=outer, T=T, inner=inner, dtype="float64", log_a=ptr(log_a), log_a_strides=strides(log_a),
                  log_b=ptr(log_b), log_b_strides=strides(log_b), out=ptr(out), out_strides=strides(out),
                  log_h0=ptr(state), log_h0_strides=(0, 0), method=method, backend=backend, **kw)
    assert_close(out, reference.scan(log_a, log_b, axis=1, log_h0=np.full((2, 3), 0.7)), np.float64, 12)


@pytest.mark.parametrize("dtype", DTYPE_IDS)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_in_place_on_pointers(backend, method, dtype, reverse, rng):
    log_a, log_b = log_inputs(rng, (2, 50, 3), dtype)
    expected = np.empty_like(log_b)
    call_log_scan(log_a, log_b, expected, reverse=reverse, method=method, backend=backend)
    call_log_scan(log_a, log_b, log_b, reverse=reverse, method=method, backend=backend)
    assert_same_bits(log_b, expected)


# ------------------------------------------------------------ half-precision staging, every op
@pytest.mark.parametrize("dtype", WITH_BFLOAT16)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_every_op_on_pointers(backend, method, dtype, reverse, rng, carvers):
    """Every op in every dtype; the workspace asked for is exactly what the call carves (with every buffer
    given: kernels' part, then one staging copy per buffer for the half-precision types)."""
    shape = (2, 21, 3)
    dtype = as_dtype(dtype)
    kwargs = dict(outer=2, T=21, inner=3, dtype=dtype.name, reverse=reverse, method=method, backend=backend)

    def args(**arrays):
        found = {}
        for name, x in arrays.items():
            found[name], found[name + "_strides"] = ptr(x), strides(x)
        return found

    log_a, log_b = log_inputs(rng, shape, dtype, neg_inf=0.03)
    log_h0, g = rng.normal(size=(2, 3)).astype(dtype), rng.normal(size=shape).astype(dtype)
    log_h = reference.scan(log_a, log_b, axis=1, log_h0=log_h0, reverse=reverse).astype(dtype)
    grad_a, grad_b, grad_h0 = np.empty_like(log_a), np.empty_like(log_b), np.empty_like(log_h0)
    ws, _keep = workspace("log_scan_backward", shape, dtype, method, backend)
    capi.log_scan_backward(**kwargs, **args(grad_log_h=g, log_a=log_a, log_b=log_b, log_h=log_h, grad_log_a=grad_a,
                                            grad_log_b=grad_b, log_h0=log_h0, grad_log_h0=grad_h0), **ws)
    assert carvers[-1].used == ws["workspace_bytes"]
    ref = reference.scan_backward(g, log_a, log_b, log_h, axis=1, log_h0=log_h0, reverse=reverse)
    scale = reference.scan_backward(np.abs(g), log_a, log_b, log_h, axis=1, log_h0=log_h0, reverse=reverse)
    for name, x, r, s in zip(["grad_log_a", "grad_log_b", "grad_log_h0"], (grad_a, grad_b, grad_h0), ref, scale,
                             strict=True):
        close(x, r, dtype, 21, scale=s, what=name)

    a, b = linear_inputs(rng, shape, dtype)
    h0 = rng.normal(size=(2, 3)).astype(dtype)
    out = np.empty_like(b)
    ws, _keep = workspace("linear_scan", shape, dtype, method, backend)
    capi.linear_scan(**kwargs, **args(a=a, b=b, out=out, h0=h0), **ws)
    assert carvers[-1].used == ws["workspace_bytes"]
    h_ref = reference.linear_scan(a, b, axis=1, h0=h0, reverse=reverse)
    h_scale = reference.linear_scan(np.abs(a), np.abs(b), axis=1, h0=np.abs(h0), reverse=reverse)
    close(out, h_ref, dtype, 21, scale=h_scale, what="linear_scan")

    h = h_ref.astype(dtype)
    grad_a, grad_b, grad_h0 = np.empty_like(a), np.empty_like(b), np.empty_like(h0)
    ws, _keep = workspace("linear_scan_backward", shape, dtype, method, backend)
    capi.linear_scan_backward(**kwargs, **args(grad_h=g, a=a, b=b, h=h, grad_a=grad_a, grad_b=grad_b, h0=h0,
                                               grad_h0=grad_h0), **ws)
    assert carvers[-1].used == ws["workspace_bytes"]
    ref = reference.linear_scan_backward(g, a, b, h, axis=1, h0=h0, reverse=reverse)
    scale = reference.linear_scan_backward(np.abs(g), np.abs(a), b, np.abs(h), axis=1, h0=np.abs(h0),
                                           reverse=reverse)
    for name, x, r, s in zip(["grad_a", "grad_b", "grad_h0"], (grad_a, grad_b, grad_h0), ref, scale, strict=True):
        close(x, r, dtype, 21, scale=s, what=name)


def test_backward_without_state_gradient_buffer(backend, method, rng):
    """log_h0 given, grad_log_h0 null: the state's gradient is simply not written."""
    log_a, log_b = log_inputs(rng, (1, 9, 2), np.float64)
    log_h0 = np.zeros((1, 2))
    log_h = reference.scan(log_a, log_b, axis=1, log_h0=log_h0)
    grad_a, grad_b = np.empty_like(log_a), np.empty_like(log_b)
    capi.log_scan_backward(outer=1, T=9, inner=2, dtype="float64", grad_log_h=ptr(log_h),
                           grad_log_h_strides=strides(log_h), log_a=ptr(log_a), log_a_strides=strides(log_a),
                           log_b=ptr(log_b), log_b_strides=strides(log_b), log_h=ptr(log_h),
                           log_h_strides=strides(log_h), grad_log_a=ptr(grad_a), grad_log_a_strides=strides(grad_a),
                           grad_log_b=ptr(grad_b), grad_log_b_strides=strides(grad_b), log_h0=ptr(log_h0),
                           log_h0_strides=strides(log_h0), method="sequential", backend=backend)
    ref = reference.scan_backward(log_h, log_a, log_b, log_h, axis=1, log_h0=log_h0)
    assert_close(grad_a, ref[0], np.float64, 9)


# ------------------------------------------------------------ empty problems
def test_T0_backward_zeroes_the_state_gradient(backend, method):
    empty = np.empty((2, 0, 3))
    log_h0, grad_h0 = np.zeros((2, 3)), np.full((2, 3), np.nan)
    grads = np.empty_like(empty), np.empty_like(empty)
    capi.log_scan_backward(outer=2, T=0, inner=3, dtype="float64", grad_log_h=ptr(empty), grad_log_h_strides=(0, 3, 1),
                           log_a=ptr(empty), log_a_strides=(0, 3, 1), log_b=ptr(empty), log_b_strides=(0, 3, 1),
                           log_h=ptr(empty), log_h_strides=(0, 3, 1), grad_log_a=ptr(grads[0]),
                           grad_log_a_strides=(0, 3, 1), grad_log_b=ptr(grads[1]), grad_log_b_strides=(0, 3, 1),
                           log_h0=ptr(log_h0), log_h0_strides=(3, 1), grad_log_h0=ptr(grad_h0),
                           grad_log_h0_strides=(3, 1), method=method, backend=backend)
    assert (grad_h0 == 0).all()


def test_empty_problems_touch_nothing(backend, method):
    out = np.full(4, 9.0)
    for outer, T, inner in [(0, 5, 1), (1, 0, 1), (3, 7, 0)]:
        capi.log_scan(outer=outer, T=T, inner=inner, dtype="float64", log_a=ptr(out), log_a_strides=(0, 0, 0),
                      log_b=ptr(out), log_b_strides=(0, 0, 0), out=ptr(out), out_strides=(0, 0, 0), method=method,
                      backend=backend)
        capi.log_scan(outer=outer, T=T, inner=inner, dtype="float64", log_a=0, log_a_strides=(0, 0, 0), log_b=0,
                      log_b_strides=(0, 0, 0), out=ptr(out), out_strides=(0, 0, 0), method=method, backend=backend)
    assert (out == 9.0).all()


# ------------------------------------------------------------ errors
def _base(**overrides):
    x = np.zeros((1, 8, 1))
    out = np.empty_like(x)
    kwargs = dict(outer=1, T=8, inner=1, dtype="float64", log_a=ptr(x), log_a_strides=(8, 1, 1), log_b=ptr(x),
                  log_b_strides=(8, 1, 1), out=ptr(out), out_strides=(8, 1, 1), backend="numpy")
    kwargs.update(overrides)
    return kwargs, (x, out)


@pytest.mark.parametrize("op", ["scan", "logscan", "", None, "log_scan_forward"])
def test_unknown_op(op):
    with pytest.raises(ValueError, match=r"^logscan\.capi\.workspace_size: unknown op .*; expected one of "
                                         r"\['linear_scan', 'linear_scan_backward', 'log_scan', 'log_scan_backward'\]"):
        capi.workspace_size(op, outer=1, T=1, inner=1, dtype="float32")


@pytest.mark.parametrize("name", ["outer", "T", "inner"])
@pytest.mark.parametrize("value", [-1, 2.0, "3", None, True], ids=["negative", "float", "str", "None", "bool"])
def test_sizes_must_be_non_negative_ints(name, value):
    kwargs, _keep = _base(**{name: value})
    with pytest.raises(ValueError, match=rf"^logscan\.capi\.log_scan: {name} must be a non-negative int, got "):
        capi.log_scan(**kwargs)
    sizes = {"outer": 1, "T": 1, "inner": 1, name: value}
    with pytest.raises(ValueError, match=rf"^logscan\.capi\.workspace_size: {name} must be a non-negative int"):
        capi.workspace_size("log_scan", dtype="float32", **sizes)


@pytest.mark.parametrize("dtype", ["int32", "complex64", "bool", "foo", None, np.int8, "float128"])
def test_bad_dtype(dtype):
    if dtype == "float128" and not hasattr(np, "float128"):
        pytest.skip("no float128 here")
    kwargs, _keep = _base(dtype=dtype)
    with pytest.raises(TypeError, match=r"^logscan\.capi\.log_scan: dtype must be one of \('float16', 'bfloat16', "
                                        r"'float32', 'float64'\), got "):
        capi.log_scan(**kwargs)
    with pytest.raises(TypeError, match=r"^logscan\.capi\.workspace_size: dtype must be one of"):
        capi.workspace_size("linear_scan", outer=1, T=1, inner=1, dtype=dtype)


def test_workspace_too_small():
    nbytes = capi.workspace_size("log_scan", outer=1, T=8, inner=1, dtype="float64", method="hillis_steele",
                                 backend="numpy")
    assert nbytes > 0
    buffer = np.empty(nbytes, np.uint8)
    for given in (0, nbytes - 1):
        kwargs, _keep = _base(method="hillis_steele", workspace=ptr(buffer) if given else 0, workspace_bytes=given)
        with pytest.raises(ValueError, match=rf"^logscan\.capi\.log_scan: workspace of {given} bytes is too small "
                                             rf"\(needs at least {nbytes}"):
            capi.log_scan(**kwargs)


def test_float16_staging_needs_workspace():
    x = np.zeros((1, 8, 1), np.float16)
    out = np.empty_like(x)
    with pytest.raises(ValueError, match=r"^logscan\.capi\.linear_scan: workspace of 0 bytes is too small"):
        capi.linear_scan(outer=1, T=8, inner=1, dtype="float16", a=ptr(x), a_strides=(8, 1, 1), b=ptr(x),
                         b_strides=(8, 1, 1), out=ptr(out), out_strides=(8, 1, 1), method="sequential",
                         backend="numpy")


class _HalfKernels:
    """The numpy backend with half-precision kernels for "sequential" (float32 arithmetic, float16 or bfloat16
    in and out), as the cupy backend has them: it records the dtypes it is handed."""

    half_methods = ("sequential",)

    def __init__(self):
        import logscan.backends.numpy_backend as numpy_backend  # noqa: PLC0415

        self.inner, self.seen = numpy_backend, []
        self.methods, self.choose_method = numpy_backend.methods, numpy_backend.choose_method
        self.workspace_size, self.as_array = numpy_backend.workspace_size, numpy_backend.as_array

    def log_scan(self, log_a, log_b, log_h0, out, method, workspace):
        self.seen.append((method, log_a.dtype, out.dtype))
        if out.dtype.itemsize > 2:
            return self.inner.log_scan(log_a, log_b, log_h0, out, method, workspace)
        wide = np.empty(out.shape, np.float32)
        state = None if log_h0 is None else log_h0.astype(np.float32)
        self.inner.log_scan(log_a.astype(np.float32), log_b.astype(np.float32), state, wide, method, workspace)
        out[...] = wide


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_kernels_of_a_backend_take_half_buffers_unstaged(monkeypatch, rng, dtype):
    """A method in the backend's ``half_methods`` gets the float16 or bfloat16 buffers and no staging
    workspace; another method of the same backend gets float32 copies."""
    from logscan import registry  # noqa: PLC0415

    dtype = as_dtype(dtype)
    fake = _HalfKernels()
    spec = registry.BackendSpec("half_kernels", "logscan.backends.numpy_backend", device="cpu", priority=-1,
                                probe=lambda: True)
    monkeypatch.setitem(registry._SPECS, "half_kernels", spec)
    monkeypatch.setitem(registry._LOADED, "half_kernels", fake)
    log_a, log_b = log_inputs(rng, (2, 40, 3), dtype)
    log_h0 = rng.normal(size=(2, 3)).astype(dtype)
    want = reference.scan(log_a, log_b, axis=1, log_h0=log_h0)
    sizes = dict(outer=2, T=40, inner=3, dtype=dtype.name, backend="half_kernels")
    for method, dtype_seen in (("sequential", dtype), ("hillis_steele", np.dtype(np.float32))):
        nbytes = capi.workspace_size("log_scan", method=method, **sizes)
        wide = capi.workspace_size("log_scan", method=method, **dict(sizes, dtype="float32"))
        assert (nbytes == wide) == (dtype_seen == dtype)  # staging copies only for the other method
        out = np.empty_like(log_b)
        workspace = np.empty(max(nbytes, 1), np.uint8)
        capi.log_scan(**sizes, method=method, log_a=ptr(log_a), log_a_strides=strides(log_a), log_b=ptr(log_b),
                      log_b_strides=strides(log_b), out=ptr(out), out_strides=strides(out), log_h0=ptr(log_h0),
                      log_h0_strides=strides(log_h0), workspace=ptr(workspace), workspace_bytes=nbytes)
        assert fake.seen[-1] == (method, dtype_seen, dtype_seen)
        close(out, want, dtype, 40)


def test_bfloat16_is_ml_dtypes_and_computed_in_float32():
    bfloat16 = as_dtype("bfloat16")
    for given in ("bfloat16", bfloat16, bfloat16.type):
        assert capi.dtype_of(given) == bfloat16
        assert capi.compute_dtype(given) == np.float32
    staged = capi.workspace_size("linear_scan", outer=1, T=16, inner=4, dtype="bfloat16", method="sequential",
                                 backend="numpy")
    assert staged == 3 * 16 * 4 * 4 + 64  # a, b and out as float32 copies (256 bytes each), the state's 16 aligned


def test_bfloat16_without_ml_dtypes_names_the_package(monkeypatch):
    """ml_dtypes is imported only for bfloat16; when it is missing, the error says what to install."""
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # `import ml_dtypes` now fails
    for dtype in list(capi._COMPUTE):  # as if it had never been loaded
        if dtype.name == "bfloat16":
            monkeypatch.delitem(capi._COMPUTE, dtype)
    capi._bfloat16.cache_clear()
    try:
        message = r"dtype 'bfloat16' needs the ml_dtypes package \(NumPy has no bfloat16\), which is not installed: " \
                  r"pip install ml_dtypes"
        with pytest.raises(RuntimeError, match=r"^logscan\.capi\.workspace_size: " + message):
            capi.workspace_size("log_scan", outer=1, T=8, inner=1, dtype="bfloat16", backend="numpy")
        kwargs, _keep = _base(dtype="bfloat16")
        with pytest.raises(RuntimeError, match=r"^logscan\.capi\.log_scan: " + message):
            capi.log_scan(**kwargs)
        assert capi.workspace_size("log_scan", outer=1, T=8, inner=1, dtype="float16", backend="numpy") > 0
    finally:
        capi._bfloat16.cache_clear()


def test_null_output_and_null_input():
    kwargs, _keep = _base(out=0)
    with pytest.raises(ValueError, match=r"^logscan\.capi\.log_scan: output buffer 'out' is a null pointer"):
        capi.log_scan(**kwargs)
    kwargs, _keep = _base(log_b=0)
    with pytest.raises(ValueError, match=r"^logscan\.capi\.log_scan: input buffer 'log_b' is a null pointer"):
        capi.log_scan(**kwargs)
    x = np.zeros((1, 4, 1))
    with pytest.raises(ValueError, match=r"^logscan\.capi\.linear_scan_backward: output buffer 'grad_a' is a null"):
        capi.linear_scan_backward(outer=1, T=4, inner=1, dtype="float64", grad_h=ptr(x), grad_h_strides=(4, 1, 1),
                                  a=ptr(x), a_strides=(4, 1, 1), b=ptr(x), b_strides=(4, 1, 1), h=ptr(x),
                                  h_strides=(4, 1, 1), grad_a=0, grad_a_strides=(4, 1, 1), grad_b=ptr(x),
                                  grad_b_strides=(4, 1, 1), backend="numpy")


def test_strides_of_the_wrong_length():
    kwargs, _keep = _base(log_a_strides=(1, 1))
    with pytest.raises(ValueError, match=r"^logscan\.capi\.log_scan: log_a_strides must have 3 entries, got \(1, 1\)"):
        capi.log_scan(**kwargs)
    h0 = np.zeros(1)
    kwargs, _keep = _base(log_h0=ptr(h0), log_h0_strides=(0, 0, 0))
    with pytest.raises(ValueError, match=r"^logscan\.capi\.log_scan: log_h0_strides must have 2 entries"):
        capi.log_scan(**kwargs)


def test_misaligned_device_pointers_are_refused_before_any_launch():
    """A misaligned device load would end the CUDA context: refused by the pointers alone (no GPU needed)."""
    kwargs, _keep = _base(device="cuda", backend="auto")
    aligned = kwargs["log_b"]
    with pytest.raises(ValueError, match=r"^logscan\.capi\.log_scan: log_b pointer 0x[0-9a-f]+ is not a multiple of "
                                         r"the float64 itemsize 8; device buffers must be element-aligned"):
        capi.log_scan(**dict(kwargs, log_b=aligned + 4))
    with pytest.raises(ValueError, match=r"^logscan\.capi\.log_scan: workspace pointer 0x[0-9a-f]+ is not 16-byte "
                                         r"aligned"):
        capi.log_scan(**dict(kwargs, workspace=aligned + 8, workspace_bytes=64))
    with pytest.raises(ValueError, match=r"^logscan\.capi\.log_scan: out pointer .* float32 itemsize 4"):
        capi.log_scan(**dict(kwargs, dtype="float32", out=kwargs["out"] + 2))


def test_unknown_method_backend_and_device():
    kwargs, _keep = _base(method="fastest")
    with pytest.raises(ValueError, match=r"^logscan\.capi\.log_scan: unknown method 'fastest' for backend 'numpy'"):
        capi.log_scan(**kwargs)
    kwargs, _keep = _base(method=1)
    with pytest.raises(TypeError, match=r"^logscan\.capi\.log_scan: method must be a str, got int"):
        capi.log_scan(**kwargs)
    kwargs, _keep = _base(backend="nope")
    with pytest.raises(ValueError, match=r"^logscan\.capi\.log_scan: unknown backend 'nope'"):
        capi.log_scan(**kwargs)
    kwargs, _keep = _base(device="cuda")
    with pytest.raises(ValueError, match=r"^logscan\.capi\.log_scan: backend 'numpy' works on cpu arrays, but the "
                                         r"arrays given are cuda arrays"):
        capi.log_scan(**kwargs)
