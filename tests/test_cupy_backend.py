"""The CuPy backend against the float64 reference.

Three layers of tests:

* pure-Python helpers (method choice, workspace sizes, launch configuration,
  kernel arguments): run everywhere;
* the whole contract with the kernels *emulated on the CPU*
  (``tests/cuda_emulation``: the same CUDA C sources compiled with g++, each
  block run as std::threads) and driven by the backend's own host code: run
  everywhere g++ is, and check the kernels' arithmetic, indexing and phase
  logic without a GPU;
* the whole contract on a real GPU through :mod:`logscan.capi` with
  ``backend="cupy"`` (raw device pointers, caller workspace, streams),
  marked ``gpu`` and skipped without one (``PYTHONPATH=. pytest -m gpu``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from logscan import reference, registry
from logscan.backends import cupy_backend as backend
from logscan.backends.cupy_backend import _module

METHODS = backend.methods
OPS = ("log", "linear")


# ============================================================ helpers
def test_registered_for_cuda_with_a_lazy_probe():
    spec = registry.spec("cupy")
    assert spec.device == "cuda" and spec.module == "logscan.backends.cupy_backend"
    assert spec.requires == ("cupy",) and spec.extra == "cuda13" and spec.priority == 20
    assert callable(spec.probe)


def test_methods_include_the_contract_methods():
    assert {"sequential", "hillis_steele", "blelloch"} <= set(METHODS)
    assert {"chunked", "lookback"} <= set(METHODS)


@pytest.mark.parametrize("shape, method", [
    ((16, 4096, 1024), "sequential"), ((64, 2048, 512), "sequential"), ((1, 1 << 20, 64), "chunked"),
    ((1, 100, 1), "sequential"), ((2, 65536, 3), "chunked"), ((512, 1000, 1024), "sequential"),
    ((1, 300, 16383), "chunked"),
], ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else v)
def test_choose_method(shape, method):
    """auto never takes lookback (not bit-reproducible run to run), forward or backward."""
    for op in ("log_scan", "linear_scan", "log_scan_backward", "linear_scan_backward"):
        assert backend.choose_method(op, np.dtype("float32"), *shape) == method


def test_chunk_length_fills_the_gpu_and_stays_in_bounds():
    assert backend.chunk_length(1, 1 << 20, 64) == 256  # 64 channels * 4096 chunks = 2^18 threads
    assert backend.chunk_length(1, 10, 1) == backend.MIN_CHUNK
    assert backend.chunk_length(1, 1 << 40, 1) == backend.MAX_CHUNK
    for shape in [(1, 1000, 1), (3, 77777, 5), (1, 1 << 24, 1)]:
        length = backend.chunk_length(*shape)
        assert length & (length - 1) == 0


def _view(strides, ptr=1 << 20):
    return backend.View(ptr, strides)


def test_vector_width_needs_contiguous_aligned_inner_and_enough_threads():
    ok = _view((1 << 20, 1 << 10, 1))
    assert backend.vector_width("float32", 256, 1024, [ok, ok]) == 4
    assert backend.vector_width("float64", 256, 1024, [ok]) == 2
    assert backend.vector_width("float16", 256, 1024, [ok]) == 8
    assert backend.vector_width("float32", 256, 1024, [ok, _view((1 << 20, 1 << 10, 2))]) == 1  # strided inner
    assert backend.vector_width("float32", 256, 1024, [_view((1 << 20, 1 << 10, 1), ptr=(1 << 20) + 4)]) == 1
    assert backend.vector_width("float32", 256, 1024, [_view((1 << 20, 1 << 10 | 1, 1))]) == 1  # odd time stride
    assert backend.vector_width("float32", 64, 1022, [ok]) == 1  # inner not a multiple of 4
    assert backend.vector_width("float32", 1, 1024, [ok]) == 1  # too few threads left


def test_grid_size_is_capped_and_positive():
    assert backend.grid_size(1, 128) == 1
    assert backend.grid_size(129, 128) == 2
    assert backend.grid_size(1 << 40, 128) == backend.MAX_BLOCKS


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_workspace_sizes(dtype):
    item = 4 if dtype != "float64" else 8
    size = backend.workspace_size
    assert size("log_scan", dtype, 4, 1000, 8, "sequential") == 0
    assert size("log_scan_backward", dtype, 4, 1000, 8, "sequential") == 0
    assert size("log_scan", dtype, 4, 0, 8, "chunked") == 0
    chunks = -(-1000 // backend.chunk_length(4, 1000, 8))
    assert size("linear_scan", dtype, 4, 1000, 8, "chunked") == 3 * backend._aligned(4 * chunks * 8 * item)
    if dtype == "float16":
        return
    tile = backend.tile_of("blelloch")
    assert size("log_scan", dtype, 2, tile, 3, "blelloch") == 0  # one tile: no carries
    levels = backend._textbook_workspace_items(2, 3 * tile * tile, 3, tile)
    assert levels == [2 * 3 * tile * 3] * 3 + [2 * 3 * 3] * 3
    forward = size("log_scan", dtype, 2, 3 * tile * tile, 3, "blelloch")
    assert forward == sum(backend._aligned(n * item) for n in levels)
    backward = size("log_scan_backward", dtype, 2, 3 * tile * tile, 3, "blelloch")
    assert backward == forward + 2 * backend._aligned(2 * 3 * tile * tile * 3 * item)


def test_kernel_arguments_are_explicit_numpy_scalars():
    args = backend._args(3, backend.View(1234, (5, -6, 0)), backend.View(0, (0, 0)))
    assert [type(a) for a in args] == [np.int64, np.uint64, np.int64, np.int64, np.int64,
                                       np.uint64, np.int64, np.int64]
    assert [int(a) for a in args] == [3, 1234, 5, -6, 0, 0, 0, 0]


def test_reversed_view_starts_at_the_last_step():
    view = backend._reversed_in_time(backend.View(1000, (40, 4, 1)), T=10, itemsize=8)
    assert view == backend.View(1000 + 9 * 4 * 8, (40, -4, 1))


def test_workspace_too_small_is_an_error():
    workspace = np.empty(100, np.uint8)
    with pytest.raises(ValueError, match="too small"):
        backend._Workspace(workspace).take(1000, np.float32)


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="unknown method"):
        backend.workspace_size("log_scan", "float32", 1, 10, 1, "magic")


# ============================================================ the contract, emulated on the CPU
def _load_emulator():
    path = Path(__file__).with_name("cuda_emulation") / "__init__.py"
    spec = importlib.util.spec_from_file_location("logscan_cuda_emulation", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _emulated_build(tmp_path_factory, **options):
    """The emulated kernels; a skip only where the compiler cannot build the emulation at all (a probe
    decides), never because a kernel file does not compile: that is a failure."""
    emulator = _load_emulator()
    problem = emulator.toolchain_problem()
    if problem is not None:
        pytest.skip(f"cannot emulate the CUDA kernels on the CPU: {problem}")
    return emulator, emulator.build(_module, tmp_path_factory.mktemp("emulated"), **options)


@pytest.fixture(scope="module")
def launchers(tmp_path_factory):
    return _emulated_build(tmp_path_factory)


@pytest.fixture
def emulated(monkeypatch, launchers):
    emulator, table = launchers
    emulator.install(monkeypatch, _module, table)
    return table


@pytest.fixture(scope="module")
def aggregates_only_launchers(tmp_path_factory):
    """lookback.cu alone (a third of the full build's time), every tile but the first publishing only its
    aggregate."""
    return _emulated_build(tmp_path_factory, files=("lookback.cu",), defines=("LOGSCAN_LOOKBACK_AGGREGATES_ONLY",))


@pytest.fixture
def emulated_aggregates_only(monkeypatch, aggregates_only_launchers):
    emulator, table = aggregates_only_launchers
    emulator.install(monkeypatch, _module, table)
    return table


# relative, times log2(T) + 1; the 16-bit types: two eps of their own (2^-10 and 2^-7)
TOLERANCE = {"float64": 1e-12, "float32": 3e-6, "float16": 2e-3, "bfloat16": 1.6e-2}


def _bfloat16():
    """``ml_dtypes.bfloat16`` (NumPy has none of its own); the test is skipped without ml_dtypes."""
    return np.dtype(pytest.importorskip("ml_dtypes", reason="bfloat16 arrays need ml_dtypes").bfloat16)


def _inputs(op, dtype, outer, T, inner, *, seed, with_h0, resets):
    rng = np.random.default_rng(seed)
    a = rng.normal(-0.2, 0.4, (outer, T, inner))
    b = rng.normal(0.0, 1.0, (outer, T, inner))
    h0 = rng.normal(0.0, 1.0, (outer, inner)) if with_h0 else None
    if op == "linear":
        a = np.tanh(np.exp(a))  # gates in (0, 1)
    if resets and T > 2:
        a[:, T // 3] = -np.inf if op == "log" else 0.0
        if op == "log":
            b[:, : T // 4 + 1, 0] = -np.inf  # a run of -inf: h stays -inf where there is no h0
    return a.astype(dtype), b.astype(dtype), None if h0 is None else h0.astype(dtype)


def _reference_forward(op, a, b, h0):
    a, b = a.astype(np.float64), b.astype(np.float64)
    h0 = None if h0 is None else h0.astype(np.float64)
    if op == "log":
        return reference.scan(a, b, axis=1, log_h0=h0)
    return reference.linear_scan(a, b, axis=1, h0=h0)


def _reference_backward(op, g, a, b, h, h0):
    args = [x.astype(np.float64) for x in (g, a, b, h)]
    h0 = None if h0 is None else h0.astype(np.float64)
    if op == "log":
        return reference.scan_backward(*args, axis=1, log_h0=h0)
    return reference.linear_scan_backward(*args, axis=1, h0=h0)


def _assert_close(got, want, dtype, T, what):
    got = np.asarray(got, np.float64)
    tol = TOLERANCE[str(np.dtype(dtype))] * (np.log2(max(T, 1)) + 1)
    same_inf = np.isinf(want) & (got == want)
    scale = np.maximum(np.abs(np.where(np.isfinite(want), want, 0)), 1.0)
    error = np.where(same_inf, 0.0, np.abs(got - want) / scale)
    assert not np.isnan(error).any(), f"{what}: NaN where the reference has {want[np.isnan(error)][:3]}"
    assert error.max(initial=0) <= tol, f"{what}: worst relative error {error.max():.3g} > {tol:.3g}"


def _run_case(method, op, dtype, outer, T, inner, *, with_h0=True, resets=True, reverse=False,
              strided=False, in_place=False, seed=0):
    a, b, h0 = _inputs(op, dtype, outer, T, inner, seed=seed, with_h0=with_h0, resets=resets)
    if strided:  # every other element of a bigger buffer, inner not contiguous
        a = np.repeat(a, 2, axis=2)[:, :, ::2]
        b = np.repeat(b, 2, axis=2)[:, :, ::2]
    out = b if in_place else np.empty_like(b)
    b_kept = b.copy()
    flip = (lambda x: x[:, ::-1, :]) if reverse else (lambda x: x)
    forward = backend.log_scan if op == "log" else backend.linear_scan
    size = backend.workspace_size(f"{op}_scan", dtype, outer, T, inner, method)
    forward(flip(a), flip(b), h0, flip(out), method, np.empty(size, np.uint8) if size else None)
    want = flip(_reference_forward(op, flip(a), flip(b_kept), h0))
    _assert_close(out, want, dtype, T, f"{method} {op} forward")

    g = np.random.default_rng(seed + 1).normal(size=out.shape).astype(dtype)
    grad_a, grad_b = np.empty_like(g), np.empty_like(g)
    grad_h0 = None if h0 is None else np.empty_like(h0)
    backward = backend.log_scan_backward if op == "log" else backend.linear_scan_backward
    size = backend.workspace_size(f"{op}_scan_backward", dtype, outer, T, inner, method)
    h = want.astype(dtype)
    backward(flip(g), flip(a), flip(b_kept), flip(h), h0, flip(grad_a), flip(grad_b), grad_h0, method,
             np.empty(size, np.uint8) if size else None)
    want_a, want_b, want_h0 = _reference_backward(op, flip(g), flip(a), flip(b_kept), flip(h), h0)
    _assert_close(grad_a, flip(want_a), dtype, T, f"{method} {op} grad a")
    _assert_close(grad_b, flip(want_b), dtype, T, f"{method} {op} grad b")
    if h0 is not None:
        _assert_close(grad_h0, want_h0, dtype, T, f"{method} {op} grad h0")


SHAPES = [(1, 1, 1), (2, 3, 3), (1, 33, 2), (2, 100, 5), (1, 1025, 2)]


def _shape_id(shape):
    return f"B{shape[0]}-T{shape[1]}-D{shape[2]}"


@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("method", METHODS)
def test_emulated_matches_reference(emulated, method, op, shape):
    _run_case(method, op, np.float64, *shape)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("method", METHODS)
def test_emulated_float32_reverse_strided_no_h0(emulated, method, op):
    _run_case(method, op, np.float32, 2, 77, 3, with_h0=False, reverse=True, strided=True)


@pytest.mark.parametrize("method", METHODS)
def test_emulated_out_may_alias_log_b(emulated, method):
    _run_case(method, "log", np.float64, 1, 70, 2, in_place=True)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("method", backend.half_methods)
def test_emulated_float16_in_and_out(emulated, method, op):
    """The methods the core hands float16 buffers to as they are (``half_methods``)."""
    _run_case(method, op, np.float16, 1, 50, 4, resets=False)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("method", backend.half_methods)
def test_emulated_bfloat16_in_and_out(emulated, method, op):
    """The same methods read and write bfloat16 (``logscan::bfloat16_t``) and compute in float32, resets and
    runs of -inf included; reverse and strided without a state."""
    _run_case(method, op, _bfloat16(), 1, 50, 4)
    _run_case(method, op, _bfloat16(), 2, 77, 3, with_h0=False, reverse=True, strided=True)


def test_emulated_bfloat16_rounds_to_nearest_even(emulated):
    """The kernels' float -> bfloat16 narrowing gives ml_dtypes' bits (round to nearest, ties to even): a
    running sum of bfloat16 steps, exact in float32, narrowed once per step; -inf, +inf and NaN stay so."""
    bfloat16 = _bfloat16()
    rng = np.random.default_rng(8)
    b = (rng.integers(-2**12, 2**12, (1, 300, 4)) * 2.0 ** rng.integers(-8, 8, (1, 300, 4))).astype(bfloat16)
    b[0, :, 0] = rng.integers(1, 4, 300)  # sums past 256 with 9 and 10 significant bits: ties, both ways
    b[0, 100:, 2] = np.inf
    b[0, 200:, 3] = np.nan
    a = np.ones_like(b)
    out = np.empty_like(b)
    backend.linear_scan(a, b, None, out, "sequential", None)
    want = np.cumsum(b.astype(np.float32), axis=1).astype(bfloat16)
    ties = np.cumsum(b[0, :, 0].astype(np.float32)).view(np.uint32) & 0xFFFF == 0x8000
    assert ties.sum() > 50
    assert np.isnan(want[0, 200:, 3]).all() and np.isposinf(want[0, 100:, 2]).all()
    np.testing.assert_array_equal(np.isnan(out), np.isnan(want))
    finite = ~np.isnan(want)
    np.testing.assert_array_equal(out.view(np.uint16)[finite], want.view(np.uint16)[finite])
    log_out = np.empty_like(b)
    backend.log_scan(np.full_like(b, -np.inf), np.full_like(b, -np.inf), None, log_out, "sequential", None)
    assert np.isneginf(log_out.astype(np.float32)).all()


def test_emulated_vectorized_per_channel(emulated, monkeypatch):
    monkeypatch.setattr(backend, "MIN_VECTOR_THREADS", 1)
    for dtype in (np.float32, np.float64):
        _run_case("sequential", "log", dtype, 2, 19, 8)
        _run_case("sequential", "linear", dtype, 2, 19, 8)
    assert backend.vector_width(np.float32, 2, 8, [backend.View(1 << 12, (152, 8, 1))]) == 4
    # float16: eight channels per 16-byte load
    assert backend.vector_width(np.float16, 2, 16, [backend.View(1 << 12, (304, 16, 1))]) == 8
    _run_case("sequential", "log", np.float16, 2, 19, 16, resets=False)
    _run_case("sequential", "linear", np.float16, 2, 19, 16, resets=False)


def test_emulated_vectorized_bfloat16(emulated, monkeypatch):
    """bfloat16: eight channels per 16-byte load, as float16."""
    monkeypatch.setattr(backend, "MIN_VECTOR_THREADS", 1)
    bfloat16 = _bfloat16()
    assert backend.vector_width(bfloat16, 2, 16, [backend.View(1 << 12, (304, 16, 1))]) == 8
    _run_case("sequential", "log", bfloat16, 2, 19, 16)
    _run_case("sequential", "linear", bfloat16, 2, 19, 16)


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("op", OPS)
def test_emulated_lookback_across_channel_groups(emulated, op):
    _run_case("lookback", op, np.float32, 2, 200, 40)  # 2 groups of 32 lanes per row, the last part idle


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("with_h0, reverse, strided", [(True, False, False), (False, True, True)],
                         ids=["h0", "reverse-strided"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", OPS)
def test_emulated_lookback_composes_aggregates_walking_back(emulated_aggregates_only, op, dtype, with_h0,
                                                            reverse, strided):
    """Every tile walks back to the first, composing the aggregates of all the tiles between, forward and
    backward: 5 tiles of 64 steps (the last partial) in 4 groups of 32 channels (2 per row, the last part idle)."""
    _run_case("lookback", op, dtype, 2, 300, 40, with_h0=with_h0, reverse=reverse, strided=strided)


def test_lookback_workspace_and_tiles():
    assert backend.lookback_tiles(1, 1 << 20, 64) == 2 * (1 << 20) // 64
    n = backend.lookback_tiles(2, 100, 40) * 32
    assert n == 2 * 2 * 2 * 32
    assert backend.workspace_size("log_scan", "float32", 2, 100, 40, "lookback") == \
        3 * backend._aligned(4 * n) + backend._aligned(4 * n) + backend._aligned(4)
    assert backend.workspace_size("log_scan_backward", "float32", 2, 100, 40, "lookback") == \
        backend.workspace_size("log_scan", "float32", 2, 100, 40, "lookback")


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_emulated_broadcast_and_nan(emulated):
    T = 40
    log_a = np.broadcast_to(np.full((1, 1, 1), -0.1), (2, T, 3))  # stride 0 everywhere
    log_b = np.random.default_rng(3).normal(size=(2, T, 3))
    log_b[1, 10, 2] = np.nan
    for method in METHODS:
        out = np.empty_like(log_b)
        size = backend.workspace_size("log_scan", np.float64, 2, T, 3, method)
        backend.log_scan(log_a, log_b, None, out, method, np.empty(size, np.uint8) if size else None)
        want = reference.scan(log_a, log_b, axis=1)
        assert np.isnan(out[1, 10:, 2]).all() and not np.isnan(out[1, :10, 2]).any(), method
        mask = ~np.isnan(want)
        np.testing.assert_allclose(out[mask], want[mask], rtol=1e-12, err_msg=method)


def test_emulated_all_neg_inf_gives_neg_inf_not_nan(emulated):
    log_a = np.full((1, 50, 2), -np.inf)
    log_b = np.full((1, 50, 2), -np.inf)
    g = np.ones_like(log_b)
    for method in METHODS:
        out = np.empty_like(log_b)
        size = max(backend.workspace_size(op, np.float64, 1, 50, 2, method)
                   for op in ("log_scan", "log_scan_backward"))
        ws = np.empty(size, np.uint8) if size else None
        backend.log_scan(log_a, log_b, None, out, method, ws)
        assert np.isneginf(out).all(), method
        grad_a, grad_b = np.empty_like(g), np.empty_like(g)
        backend.log_scan_backward(g, log_a, log_b, out, None, grad_a, grad_b, None, method, ws)
        assert (grad_a == 0).all() and (grad_b == 0).all(), method


@pytest.mark.parametrize("method", METHODS)
def test_emulated_float32_slow_constant_decay_does_not_drift(emulated, method):
    """One slow decay for every step biases every rounding of log a + log h the same way: the plain
    per-channel walk drifted by 7.2e-6 at T = 16384 here, the compensated one stays at 2.2e-7."""
    T = 16384
    log_a = np.full((1, T, 4), np.log(0.9999), np.float32)
    log_b = np.random.default_rng(3).normal(size=(1, T, 4)).astype(np.float32)
    out = np.empty_like(log_b)
    size = backend.workspace_size("log_scan", np.float32, 1, T, 4, method)
    backend.log_scan(log_a, log_b, None, out, method, np.empty(size, np.uint8) if size else None)
    want = reference.scan(log_a, log_b, axis=1)
    assert (np.abs(out - want) / (1 + np.abs(want))).max() < 3e-6


def test_emulated_chunking_agrees_to_rounding(emulated):
    """Scanning [x1, x2] = scanning x1, then x2 from x1's last state, to rounding: the per-channel
    kernel carries a compensated state whose low part does not cross the split (and the batches of
    8 float64 steps are aligned differently when the split is not a multiple of 8)."""
    a, b, _ = _inputs("log", np.float64, 1, 300, 2, seed=5, with_h0=False, resets=True)
    whole = np.empty_like(b)
    backend.log_scan(a, b, None, whole, "sequential", None)
    for split in (96, 100):
        first, second = np.empty_like(b[:, :split]), np.empty_like(b[:, split:])
        backend.log_scan(a[:, :split], b[:, :split], None, first, "sequential", None)
        backend.log_scan(a[:, split:], b[:, split:], first[:, -1].copy(), second, "sequential", None)
        joined = np.concatenate([first, second], axis=1)
        np.testing.assert_allclose(joined, whole, rtol=1e-14)


def _register_emulated(monkeypatch, device):
    """The cupy backend on NumPy buffers (NumPy views, emulated kernels), registered for ``device``."""
    from logscan.backends import _host

    monkeypatch.setattr(backend, "as_array", _host.as_array)
    spec = registry.BackendSpec(f"cupy_emulated_{device}", backend.__name__, device=device, priority=-1,
                                probe=lambda: True)
    monkeypatch.setitem(registry._SPECS, spec.name, spec)
    monkeypatch.setitem(registry._LOADED, spec.name, backend)
    return spec.name


@pytest.fixture
def emulated_core(monkeypatch, emulated):
    """The cupy backend behind :mod:`logscan.capi` as a CPU backend on NumPy buffers; returns its name."""
    return _register_emulated(monkeypatch, "cpu")


class _FakeCupyArray:
    """A CuPy array as the device front door sees one: ``__cuda_array_interface__`` (bfloat16's typestr is the
    opaque "<V2") and its own ``dtype``, over host memory (the emulated kernels' device memory)."""

    def __init__(self, host):
        self.host, self.dtype, self.shape = host, host.dtype, host.shape
        self.__cuda_array_interface__ = {"shape": host.shape, "strides": host.strides, "typestr": host.dtype.str,
                                         "data": (host.ctypes.data, False), "version": 3}


_FakeCupyArray.__module__ = "cupy.fake"  # its family: CuPy allocates the outputs and the workspace


@pytest.fixture
def emulated_front_door(monkeypatch, emulated):
    """The device front door on :class:`_FakeCupyArray` arrays and the emulated kernels (a stand-in CuPy
    module allocates); returns the backend's name."""
    fake = types.ModuleType("cupy")
    fake.empty = lambda shape, dtype: _FakeCupyArray(np.empty(shape, dtype))
    fake.cuda = types.SimpleNamespace(Device=lambda index: contextlib.nullcontext())
    monkeypatch.setitem(sys.modules, "cupy", fake)
    return _register_emulated(monkeypatch, "cuda")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("method", ["sequential", "chunked", "blelloch"])
def test_emulated_through_the_device_front_door(emulated_front_door, method, dtype):
    """CuPy-family device arrays through logscan's functions, outputs and workspace allocated by the family
    (sequential needs no workspace, chunked and blelloch do); bfloat16 ones (typestr "<V2", dtype bfloat16) are
    read as bfloat16, computed by the kernels (directly, or on float32 copies) and answered as bfloat16,
    forward and backward, log and linear."""
    import logscan

    dtype = _bfloat16() if dtype == "bfloat16" else np.dtype(dtype)
    options = dict(axis=1, method=method, backend=emulated_front_door)
    for op in OPS:
        a, b, h0 = _inputs(op, dtype, 2, 40, 3, seed=3, with_h0=True, resets=True)
        g = np.random.default_rng(4).normal(size=a.shape).astype(dtype)
        device = [_FakeCupyArray(x) for x in (a, b, h0, g)]
        if op == "log":
            h = logscan.scan(*device[:2], log_h0=device[2], **options)
            grads = logscan.scan_backward(device[3], *device[:2], h, log_h0=device[2], **options)
        else:
            h = logscan.linear_scan(*device[:2], h0=device[2], **options)
            grads = logscan.linear_scan_backward(device[3], *device[:2], h, h0=device[2], **options)
        assert isinstance(h, _FakeCupyArray) and h.host.dtype == dtype
        _assert_close(h.host, _reference_forward(op, a, b, h0), dtype, 40, f"{method} {op} forward")
        for got, want, name in zip(grads, _reference_backward(op, g, a, b, h.host, h0), ("a", "b", "h0"),
                                   strict=True):
            assert got.host.dtype == dtype
            _assert_close(got.host, want, dtype, 40, f"{method} {op} grad {name}")


def test_bfloat16_device_arrays_are_named_by_their_own_dtype():
    """torch's bfloat16 tensors, CuPy's bfloat16 arrays: "<V2" in the interface, bfloat16 in their dtype; two
    opaque bytes of any other array stay an error."""
    from logscan import _device

    bfloat16 = _bfloat16()
    torch = pytest.importorskip("torch")
    interface = {"shape": (2, 3), "strides": None, "typestr": "<V2", "data": (1 << 20, False), "version": 3}
    for dtype in (torch.bfloat16, bfloat16):
        x = types.SimpleNamespace(dtype=dtype, __cuda_array_interface__=interface)
        assert _device._describe("f", "x", x).dtype == bfloat16
    assert _device.accepts_bfloat16()
    with pytest.raises(TypeError, match=r"^f: x must have a real floating dtype"):
        _device._describe("f", "x", types.SimpleNamespace(__cuda_array_interface__=interface))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("method", METHODS)
def test_emulated_bfloat16_through_the_core(emulated_core, method, op):
    """bfloat16 buffers through the core: the ``half_methods`` take them as they are, the textbook methods
    compute on float32 copies the core stages in the workspace (of exactly the size it asks), forward and
    backward, with a state, and reverse without one."""
    _gpu_case(method, op, _bfloat16(), (2, 100, 3), with_h0=True, reverse=False, backend_name=emulated_core)
    _gpu_case(method, op, _bfloat16(), (1, 70, 2), with_h0=False, reverse=True, backend_name=emulated_core)


# ============================================================ the contract on a GPU
def _gpu_available():
    return registry.spec("cupy").is_available()


GPU_SHAPES = [(1, 1, 1), (2, 2, 3), (1, 31, 4), (3, 32, 5), (2, 33, 1), (1, 1000, 7), (2, 1024, 2),
              (1, 1025, 3), (1, 65537, 2), (4, 300, 1024)]


def _capi_call(op, method, dtype, a, b, h0, *, reverse, backend_name="cupy"):
    """Run forward and backward through logscan.capi on device pointers (or, with another backend name, on
    NumPy buffers: the emulated kernels); returns host results."""
    from logscan import capi

    on_gpu = backend_name == "cupy"
    xp = importlib.import_module("cupy") if on_gpu else np
    device = "cuda" if on_gpu else "cpu"

    ptr = backend._pointer  # of CuPy and NumPy arrays alike
    outer, T, inner = a.shape
    dev = {name: xp.asarray(x) for name, x in (("a", a), ("b", b)) if x is not None}
    dev_h0 = None if h0 is None else xp.asarray(h0)
    out = xp.empty_like(dev["b"])

    def strides(x):
        return tuple(s // x.itemsize for s in x.strides)

    def ws(name):
        nbytes = capi.workspace_size(name, outer=outer, T=T, inner=inner, dtype=dtype, method=method,
                                     backend=backend_name, device=device)
        return xp.empty(max(nbytes, 1), np.uint8), nbytes

    names = ("log_a", "log_b", "log_h0") if op == "log" else ("a", "b", "h0")
    work, nbytes = ws(f"{op}_scan")
    state = {names[2]: ptr(dev_h0), f"{names[2]}_strides": strides(dev_h0)} if h0 is not None else {}
    getattr(capi, f"{op}_scan")(
        outer=outer, T=T, inner=inner, dtype=dtype, reverse=reverse, method=method, backend=backend_name,
        device=device, workspace=ptr(work), workspace_bytes=nbytes,
        **{names[0]: ptr(dev["a"]), f"{names[0]}_strides": strides(dev["a"]),
           names[1]: ptr(dev["b"]), f"{names[1]}_strides": strides(dev["b"]),
           "out": ptr(out), "out_strides": strides(out)}, **state)

    g = xp.asarray(np.random.default_rng(7).normal(size=a.shape).astype(dtype))
    grad_a, grad_b = xp.empty_like(g), xp.empty_like(g)
    grad_h0 = None if h0 is None else xp.empty_like(dev_h0)
    prefix = "log_" if op == "log" else ""
    work, nbytes = ws(f"{op}_scan_backward")
    extra = {}
    if h0 is not None:
        extra = {names[2]: ptr(dev_h0), f"{names[2]}_strides": strides(dev_h0),
                 f"grad_{names[2]}": ptr(grad_h0), f"grad_{names[2]}_strides": strides(grad_h0)}
    getattr(capi, f"{op}_scan_backward")(
        outer=outer, T=T, inner=inner, dtype=dtype, reverse=reverse, method=method, backend=backend_name,
        device=device, workspace=ptr(work), workspace_bytes=nbytes,
        **{f"grad_{prefix}h": ptr(g), f"grad_{prefix}h_strides": strides(g),
           names[0]: ptr(dev["a"]), f"{names[0]}_strides": strides(dev["a"]),
           names[1]: ptr(dev["b"]), f"{names[1]}_strides": strides(dev["b"]),
           f"{prefix}h": ptr(out), f"{prefix}h_strides": strides(out),
           f"grad_{names[0]}": ptr(grad_a), f"grad_{names[0]}_strides": strides(grad_a),
           f"grad_{names[1]}": ptr(grad_b), f"grad_{names[1]}_strides": strides(grad_b)}, **extra)
    if on_gpu:
        xp.cuda.runtime.deviceSynchronize()
    host = [None if x is None else (xp.asnumpy(x) if on_gpu else x) for x in (out, g, grad_a, grad_b, grad_h0)]
    return tuple(host)


def _gpu_case(method, op, dtype, shape, *, with_h0, reverse, resets=True, backend_name="cupy"):
    a, b, h0 = _inputs(op, dtype, *shape, seed=sum(shape), with_h0=with_h0, resets=resets)
    out, g, grad_a, grad_b, grad_h0 = _capi_call(op, method, str(np.dtype(dtype)), a, b, h0, reverse=reverse,
                                                 backend_name=backend_name)
    flip = (lambda x: x[:, ::-1, :]) if reverse else (lambda x: x)
    want = flip(_reference_forward(op, flip(a), flip(b), h0))
    T = shape[1]
    _assert_close(out, want, dtype, T, f"{method} {op} forward")
    want_a, want_b, want_h0 = _reference_backward(op, flip(g), flip(a), flip(b), flip(out), h0)
    _assert_close(grad_a, flip(want_a), dtype, T, f"{method} {op} grad a")
    _assert_close(grad_b, flip(want_b), dtype, T, f"{method} {op} grad b")
    if h0 is not None:
        _assert_close(grad_h0, want_h0, dtype, T, f"{method} {op} grad h0")


@pytest.mark.parametrize("shape", GPU_SHAPES, ids=_shape_id)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("with_h0, reverse", [(True, False), (False, True)], ids=["h0", "reverse"])
@pytest.mark.gpu
@pytest.mark.skipif("not _gpu_available()", reason="no CUDA device or no CuPy")
def test_gpu_matches_reference(method, op, dtype, shape, with_h0, reverse):
    _gpu_case(method, op, dtype, shape, with_h0=with_h0, reverse=reverse)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.gpu
@pytest.mark.skipif("not _gpu_available()", reason="no CUDA device or no CuPy")
def test_gpu_float16_through_the_core(method):
    _gpu_case(method, "log", np.float16, (2, 100, 8), with_h0=True, reverse=False, resets=False)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.gpu
@pytest.mark.skipif("not _gpu_available()", reason="no CUDA device or no CuPy")
def test_gpu_bfloat16_through_the_core(method, op):
    """Needs ml_dtypes, and a CuPy that holds bfloat16 arrays (the staging copies of the textbook methods)."""
    _gpu_case(method, op, _bfloat16(), (2, 1000, 8), with_h0=True, reverse=False)
    _gpu_case(method, op, _bfloat16(), (1, 300, 3), with_h0=False, reverse=True)


@pytest.mark.parametrize("method", ["sequential", "chunked", "lookback"])
@pytest.mark.gpu
@pytest.mark.skipif("not _gpu_available()", reason="no CUDA device or no CuPy")
def test_gpu_float16_kernels_directly(method):
    import cupy

    a, b, h0 = _inputs("log", np.float16, 2, 300, 64, seed=1, with_h0=True, resets=False)
    out = cupy.empty(b.shape, cupy.float16)
    size = backend.workspace_size("log_scan", np.float16, 2, 300, 64, method)
    backend.log_scan(cupy.asarray(a), cupy.asarray(b), cupy.asarray(h0), out, method,
                     cupy.empty(size, cupy.uint8) if size else None)
    _assert_close(cupy.asnumpy(out), _reference_forward("log", a, b, h0), np.float16, 300, method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.gpu
@pytest.mark.skipif("not _gpu_available()", reason="no CUDA device or no CuPy")
@pytest.mark.parametrize("decay", [1.0, 0.9999], ids=["log-cumsum-exp", "slow-constant-decay"])
def test_gpu_float32_accuracy_at_T_65536(method, decay):
    """float32 within 1e-5 (relative to max(|log h|, 1)) of float64: no decay, or one slow decay repeated."""
    import cupy

    T = 65536
    log_b = np.random.default_rng(11).normal(size=(1, T, 64)).astype(np.float32)
    log_a = np.full_like(log_b, np.log(decay))
    out = cupy.empty(log_b.shape, cupy.float32)
    size = backend.workspace_size("log_scan", np.float32, 1, T, 64, method)
    backend.log_scan(cupy.asarray(log_a), cupy.asarray(log_b), None, out, method,
                     cupy.empty(size, cupy.uint8) if size else None)
    want = reference.scan(log_a, log_b, axis=1)
    error = np.abs(cupy.asnumpy(out) - want) / np.maximum(np.abs(want), 1)
    assert error.max() <= 1e-5, error.max()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.gpu
@pytest.mark.skipif("not _gpu_available()", reason="no CUDA device or no CuPy")
def test_gpu_runs_on_the_given_stream(method):
    import cupy

    a, b, h0 = _inputs("log", np.float32, 2, 5000, 8, seed=2, with_h0=True, resets=True)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        log_a, log_b, log_h0 = cupy.asarray(a), cupy.asarray(b), cupy.asarray(h0)
        out = cupy.empty_like(log_b)
        size = backend.workspace_size("log_scan", np.float32, 2, 5000, 8, method)
        work = cupy.empty(size, cupy.uint8) if size else None
    backend.log_scan(log_a, log_b, log_h0, out, method, work, stream=stream.ptr)
    stream.synchronize()
    _assert_close(cupy.asnumpy(out), _reference_forward("log", a, b, h0), np.float32, 5000, method)


@pytest.mark.gpu
@pytest.mark.skipif("not _gpu_available()", reason="no CUDA device or no CuPy")
def test_gpu_large_vectorized_shape(monkeypatch):
    """The per-channel kernel with 16-byte loads (4 float32 channels per thread), checked to have run so."""
    import cupy

    # inner contiguous and 16-byte aligned; 64 * 4096 / 4 = 65536 float4 threads, twice MIN_VECTOR_THREADS
    outer, T, inner = 64, 64, 4096
    assert outer * inner // 4 >= 2 * backend.MIN_VECTOR_THREADS
    a, b, h0 = _inputs("log", np.float32, outer, T, inner, seed=4, with_h0=True, resets=True)
    log_a, log_b = cupy.asarray(a), cupy.asarray(b)
    out = cupy.empty_like(log_b)
    views = [backend.view_of(x, 3) for x in (log_a, log_b, out)]
    assert backend.vector_width(np.float32, outer, inner, views) == 4
    chosen, real = [], backend.vector_width

    def recording(*args):
        chosen.append(real(*args))
        return chosen[-1]

    monkeypatch.setattr(backend, "vector_width", recording)
    backend.log_scan(log_a, log_b, cupy.asarray(h0), out, "sequential", None)
    assert chosen == [4], f"the launch used vector widths {chosen}, not 4"
    _assert_close(cupy.asnumpy(out), _reference_forward("log", a, b, h0), np.float32, T, "vectorized")


@pytest.mark.gpu
@pytest.mark.skipif("not _gpu_available()", reason="no CUDA device or no CuPy")
def test_gpu_as_array_views_device_memory():
    import cupy

    x = cupy.arange(24, dtype=cupy.float32).reshape(2, 3, 4)
    view = backend.as_array(x.data.ptr + 4 * 23, (2, 3, 4), (-12, -4, -1), np.float32, False)
    np.testing.assert_array_equal(cupy.asnumpy(view), cupy.asnumpy(x)[::-1, ::-1, ::-1])
