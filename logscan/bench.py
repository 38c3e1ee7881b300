"""``logscan bench``: scan timings side by side with a NumPy loop and a memory copy.

For each shape ``(B, T, D)`` (scanned along axis 1) the bench times, in one
process:

- the **NumPy loop** over T, what a person writes without logscan, forward
  (``h = np.logaddexp(log_a[:, t] + h, log_b[:, t])``) and backward (a
  reverse loop with the stable weights of the documentation, given the
  forward output, which the forward loop computes beforehand);
- every method of every selected backend, forward (:func:`logscan.scan`)
  and backward (:func:`logscan.scan_backward`), each writing into output
  arrays allocated once (``out=``, the loops' too), as a training loop that
  keeps its buffers does (a fresh 32 MiB array costs the zeroing of its
  pages by the operating system on first touch, a large part of a backward
  call on the CPU);
- ``np.copyto`` of three arrays of the same size (as many bytes as the
  backward moves): the memory bandwidth that a scan, which is memory-bound
  when done well, can hope to approach. A copy of a single array was
  measured partly out of the last-level cache where its two copies fit
  ((1, 65536, 64) float32: 2 x 16 MiB against a 32 MiB L3, 38 GB/s instead
  of 28), a bandwidth that a scan moving 3 or 6 such arrays cannot have.

Each row is called once untimed, then ``repeats`` rounds call the copy and
every row once each, in turn (on a shared machine speed drifts from second
to second; interleaving gives every row the same chances), and a row's
time is its best call. A row
reports its time, its speedup over the NumPy loop (loop time / row time),
for a backward row also over the NumPy forward and reverse loops together
(what a forward and backward pass cost in NumPy, against this backward
alone), and the fraction of the copy bandwidth it achieves: a forward call moves 3
arrays (reads ``log_a``, ``log_b``, writes ``log_h``), a backward call 6
(reads ``grad_log_h``, ``log_a``, ``log_b``, ``log_h``, writes two
gradients), a copy 2. It also reports the largest absolute difference from
the NumPy loop's result, so that a fast but wrong row does not go unseen.

Rows are built from :class:`Candidate` objects and timed by a :class:`Timer`;
a later GPU provider adds candidates whose timer synchronizes the device.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

import logscan
from logscan import _machine, registry

DEFAULT_SHAPES = ((8, 2048, 512), (1, 65536, 64))
DTYPES = ("float32", "float64", "float16")
AXIS = 1
ARRAYS_MOVED = {"forward": 3, "backward": 6, "copy": 2}
LOOP = "numpy loop"
# --quick skips a row whose estimated time per call is above this (seconds).
SLOW_SECONDS = 2.0
# The slowness estimate times the call on the first T // PROBE_FRACTION steps.
PROBE_FRACTION = 8


class BenchError(ValueError):
    """A bad request to the bench (unknown backend, bad shape, ...); the message says what is wrong."""


# ---------------------------------------------------------------- timing
class Timer:
    """Times one call (:func:`timed_rounds` keeps the best of several).

    Parameters
    ----------
    sync : callable, optional
        Called after each call and before the clock is read again. CPU calls
        need none; a GPU timer passes the device's synchronize so that the
        time covers the work, not only its launch.
    clock : callable, default time.perf_counter
        Seconds as a float.
    """

    def __init__(self, sync: Callable[[], Any] | None = None, clock: Callable[[], float] = time.perf_counter):
        self.sync = sync
        self.clock = clock

    def once(self, call: Callable[[], Any]) -> tuple[float, Any]:
        """Seconds taken by one call, and what it returned."""
        if self.sync is not None:
            self.sync()
        start = self.clock()
        result = call()
        if self.sync is not None:
            self.sync()
        return self.clock() - start, result


CPU_TIMER = Timer()


@dataclass
class Candidate:
    """One row to time.

    Parameters
    ----------
    op : {"forward", "backward"}
    backend, method : str
        What the row shows (the baseline is ``backend="numpy loop"``, ``method="-"``).
    call : callable
        Runs the operation once on the full problem; returns the result
        (an array, or a tuple of arrays for backward).
    probe : callable, optional
        The same operation on the first ``T // PROBE_FRACTION`` steps, used
        by ``--quick`` to estimate the time of a call before making one.
    timer : Timer
        How to time ``call`` (GPU candidates synchronize).
    to_numpy : callable
        Turns a result array into a NumPy array to compare with the baseline.
    skip : str, optional
        A reason not to run this row at all; the row still shows, with it.
    """

    op: str
    backend: str
    method: str
    call: Callable[[], Any]
    probe: Callable[[], Any] | None = None
    timer: Timer = CPU_TIMER
    to_numpy: Callable[[Any], np.ndarray] = np.asarray
    skip: str | None = None


@dataclass
class Row:
    """A measured (or skipped) row of the table; ``seconds`` is None when skipped."""

    shape: tuple[int, int, int]
    dtype: str
    op: str
    backend: str
    method: str
    seconds: float | None
    speedup: float | None = None
    # backward rows: (NumPy forward loop + NumPy reverse loop) / time, what a NumPy forward and backward
    # cost against this backward alone (the measure of the backward's speed target)
    speedup_loops: float | None = None
    copy_fraction: float | None = None
    max_abs_diff: float | None = None
    note: str = ""


@dataclass
class ShapeResult:
    shape: tuple[int, int, int]
    dtype: str
    copy_seconds: float
    copy_bytes: int
    rows: list[Row] = field(default_factory=list)

    @property
    def copy_bandwidth(self) -> float:
        """Bytes per second of ``np.copyto`` (read + write)."""
        return ARRAYS_MOVED["copy"] * self.copy_bytes / self.copy_seconds


# ---------------------------------------------------------------- the problem and the NumPy loop
class Problem:
    """Inputs of one shape, on the host, with the scan along axis 1.

    ``log_a`` lies in ``log(0.5) .. 0`` (a decay), ``log_b`` and
    ``grad_log_h`` are standard normal: every value is finite.
    """

    def __init__(self, shape, dtype, seed=0):
        rng = np.random.default_rng(seed)
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.log_a = np.log(rng.uniform(0.5, 1.0, self.shape)).astype(self.dtype)
        self.log_b = rng.standard_normal(self.shape).astype(self.dtype)
        self.grad_log_h = rng.standard_normal(self.shape).astype(self.dtype)
        self.log_h = numpy_loop_forward(self.log_a, self.log_b, np.empty(self.shape, self.dtype))

    @property
    def nbytes(self) -> int:
        """Bytes of one array of the problem."""
        return self.log_a.nbytes

    def prefix(self, steps):
        """Views of the inputs on the first ``steps`` time steps (a scan of a prefix is a prefix of the scan)."""
        return {name: getattr(self, name)[:, :steps] for name in ("log_a", "log_b", "grad_log_h", "log_h")}


def numpy_loop_forward(log_a, log_b, out):
    """The baseline: one ``np.logaddexp`` per time step along axis 1."""
    h = np.full(log_a[:, 0].shape, -np.inf, log_a.dtype)
    for t in range(log_a.shape[1]):
        h = np.logaddexp(log_a[:, t] + h, log_b[:, t])
        out[:, t] = h
    return out


def numpy_loop_backward(grad_log_h, log_a, log_b, log_h, out=None):
    """The baseline backward: a reverse loop with the stable weights in [0, 1].

    ``w_t = exp(log_a_t + log_h_{t-1} - log_h_t)``, ``u_t = g_t + w_{t+1} u_{t+1}``,
    ``grad_log_a_t = u_t w_t``, ``grad_log_b_t = u_t exp(log_b_t - log_h_t)``.
    The bench's inputs are finite, so the ``-inf`` guard of the library is not needed here.
    Like :func:`logscan.scan_backward`, it writes the two gradients into ``out`` when given.
    """
    grad_log_a, grad_log_b = out if out is not None else (np.empty_like(log_a), np.empty_like(log_b))
    carry = np.zeros(log_a[:, 0].shape, log_a.dtype)  # w_{t+1} u_{t+1}
    for t in range(log_a.shape[1] - 1, -1, -1):
        u = grad_log_h[:, t] + carry
        if t > 0:
            w = np.exp(log_a[:, t] + log_h[:, t - 1] - log_h[:, t])
        else:
            w = np.zeros_like(u)  # log h_{-1} = -inf
        carry = u * w
        grad_log_a[:, t] = carry
        grad_log_b[:, t] = u * np.exp(log_b[:, t] - log_h[:, t])
    return grad_log_a, grad_log_b


def baseline_candidates(problem):
    """The NumPy loop rows, forward and backward; every other row is compared with them."""
    out = np.empty(problem.shape, problem.dtype)
    grads = (np.empty(problem.shape, problem.dtype), np.empty(problem.shape, problem.dtype))
    p = problem
    # Every row writes into arrays given to it (out=), the loops and logscan alike, as a training loop
    # that keeps its buffers does: fresh arrays would add the zeroing of their pages by the OS to each call.
    yield Candidate("forward", LOOP, "-", lambda: numpy_loop_forward(p.log_a, p.log_b, out))
    yield Candidate("backward", LOOP, "-",
                    lambda: numpy_loop_backward(p.grad_log_h, p.log_a, p.log_b, p.log_h, out=grads))


def _prefix_steps(T):
    return max(T // PROBE_FRACTION, 1)


def cpu_candidates(problem, backend, methods):
    """Forward and backward rows of one CPU backend, one per method."""
    p = problem
    short = p.prefix(_prefix_steps(p.shape[1]))
    out = np.empty(p.shape, p.dtype)
    grads = (np.empty(p.shape, p.dtype), np.empty(p.shape, p.dtype))
    for method in methods:
        options = dict(axis=AXIS, method=method, backend=backend)

        def forward(options=options):
            return logscan.scan(p.log_a, p.log_b, out=out, **options)

        def forward_probe(options=options):
            return logscan.scan(short["log_a"], short["log_b"], **options)

        def backward(options=options):
            return logscan.scan_backward(p.grad_log_h, p.log_a, p.log_b, p.log_h, out=grads, **options)[:2]

        def backward_probe(options=options):
            return logscan.scan_backward(short["grad_log_h"], short["log_a"], short["log_b"], short["log_h"],
                                         **options)

        yield Candidate("forward", backend, method, forward, forward_probe)
        yield Candidate("backward", backend, method, backward, backward_probe)


# ---------------------------------------------------------------- running rows
def estimate_seconds(candidate, T):
    """A generous estimate of one call's time, from a call on a ``T // PROBE_FRACTION`` prefix.

    The probe runs twice (the first call may compile) and its time is scaled
    by ``T log T``, the work of the costliest method (Hillis-Steele).
    """
    steps = _prefix_steps(T)
    candidate.probe()  # warm-up (compilation, caches)
    seconds, _ = candidate.timer.once(candidate.probe)
    scale = T / steps
    if steps > 1:
        scale *= math.log2(max(T, 2)) / math.log2(steps)
    return seconds * scale


def _max_abs_diff(result, reference, to_numpy):
    results = result if isinstance(result, tuple) else (result,)
    references = reference if isinstance(reference, tuple) else (reference,)
    worst = 0.0
    for got, want in zip(results, references, strict=True):
        with np.errstate(invalid="ignore"):
            diff = np.abs(to_numpy(got).astype(np.float64) - want.astype(np.float64))
        worst = max(worst, float(np.max(diff)) if diff.size else 0.0)
    return worst


def warm_up(candidate, problem, *, skip_slow=False):
    """One untimed call of a candidate; returns ``(result or None, note)`` (a note says why it was skipped)."""
    if candidate.skip:
        return None, candidate.skip
    if skip_slow and candidate.probe is not None:
        estimate = estimate_seconds(candidate, problem.shape[1])
        if estimate > SLOW_SECONDS:
            return None, f"skipped (slow: about {_format_seconds(estimate)} per call)"
    return candidate.call(), ""


def timed_rounds(calls, repeats):
    """Best seconds of each ``(timer, call)`` over ``repeats`` rounds, each round calling every one once.

    Interleaved rather than one call after another: on a shared machine the
    speed of the cores and of memory changes from second to second, and the
    rows of a table are compared with each other (a ratio is only fair when
    both sides had the same chances at the fast moments).
    """
    best = [math.inf] * len(calls)
    for _ in range(max(repeats, 1)):
        for k, (timer, call) in enumerate(calls):
            best[k] = min(best[k], timer.once(call)[0])  # the result is dropped at once: no stale 100 MiB alive
    return best


def measure_shape(shape, dtype, candidate_sources, *, repeats, skip_slow=False, progress=None):
    """Time the copy, the baseline and every candidate for one shape.

    Every row is called once untimed (and its result compared with the NumPy
    loop's), then ``repeats`` rounds call the copy and every row once each,
    in turn; a row's time is its best call.

    Parameters
    ----------
    shape : tuple of 3 int
        ``(B, T, D)``, scanned along axis 1.
    dtype : str
    candidate_sources : sequence of callable
        Each takes the :class:`Problem` and yields :class:`Candidate` objects.
    repeats : int
        Timed rounds (the best call of each row is kept), after one warm-up call of each.
    skip_slow : bool
        Skip rows estimated slower than :data:`SLOW_SECONDS` per call.
    progress : callable, optional
        Called with a short text before each row's warm-up and before the timed rounds (for a live display).

    Returns
    -------
    ShapeResult
    """
    problem = Problem(shape, dtype)
    source = np.concatenate([problem.log_a.ravel(), problem.log_b.ravel(), problem.grad_log_h.ravel()])
    target = np.empty_like(source)
    candidates = list(baseline_candidates(problem))
    for make in candidate_sources:
        candidates.extend(make(problem))
    candidates.sort(key=lambda c: c.op != "forward")  # stable: forward rows first, each group in order
    rows, timed, references = [], [], {}
    for candidate in candidates:
        if progress is not None:
            progress(f"{shape} {candidate.op} {candidate.backend} {candidate.method}")
        output, note = warm_up(candidate, problem, skip_slow=skip_slow)
        row = Row(tuple(shape), str(np.dtype(dtype)), candidate.op, candidate.backend, candidate.method, None,
                  note=note)
        rows.append(row)
        if note:
            continue
        # compared now: rows of one backend share their out= buffers, which the next row overwrites
        if candidate.backend == LOOP:
            references[candidate.op] = tuple(np.array(x) for x in output) if isinstance(output, tuple) \
                else np.array(output)
        if candidate.op in references:
            row.max_abs_diff = _max_abs_diff(output, references[candidate.op], candidate.to_numpy)
        timed.append((candidate, row))
    calls = [(CPU_TIMER, lambda: np.copyto(target, source))] + [(c.timer, c.call) for c, _row in timed]
    if progress is not None:
        progress(f"{shape} {max(repeats, 1)} timed rounds of {len(calls)} calls")
    copy_seconds, *seconds = timed_rounds(calls, repeats)
    result = ShapeResult(tuple(shape), str(np.dtype(dtype)), copy_seconds, source.nbytes, rows)
    loop_seconds = {}
    for (candidate, row), row_seconds in zip(timed, seconds, strict=True):
        row.seconds = row_seconds
        if candidate.backend == LOOP:
            loop_seconds[candidate.op] = row_seconds
    for row in rows:
        if row.seconds is None:
            continue
        if row.op in loop_seconds:
            row.speedup = loop_seconds[row.op] / row.seconds
        if row.op == "backward" and row.backend != LOOP and {"forward", "backward"} <= set(loop_seconds):
            row.speedup_loops = (loop_seconds["forward"] + loop_seconds["backward"]) / row.seconds
        row.copy_fraction = ARRAYS_MOVED[row.op] * problem.nbytes / row.seconds / result.copy_bandwidth
    return result


# ---------------------------------------------------------------- selecting backends
def parse_shape(text):
    """``"B,T,D"`` -> ``(B, T, D)`` of positive ints; raises :class:`BenchError`."""
    parts = [part.strip() for part in str(text).replace("x", ",").split(",")]
    try:
        shape = tuple(int(part) for part in parts)
    except ValueError:
        raise BenchError(f"shape must be three positive integers B,T,D (for example 8,2048,512), got {text!r}") \
            from None
    if len(shape) != 3 or min(shape) < 1:
        raise BenchError(f"shape must be three positive integers B,T,D (for example 8,2048,512), got {text!r}")
    return shape


def select_backends(requested=None):
    """Which CPU backends to bench, and a line for each one that is skipped.

    Parameters
    ----------
    requested : sequence of str, optional
        Backend names; all registered CPU backends when None.

    Returns
    -------
    chosen : list of (str, module)
        Loaded backends.
    skipped : list of str
        ``"backend X: skipped (why)"`` lines.

    Raises
    ------
    BenchError
        For a name that is not registered, or that is not a CPU backend.
    """
    registered = registry.names()
    if requested:
        for name in requested:
            if name not in registered:
                raise BenchError(f"unknown backend {name!r}; registered backends: {', '.join(sorted(registered))}")
            if registry.spec(name).device != "cpu":
                raise BenchError(f"backend {name!r} runs on {registry.spec(name).device} arrays; logscan bench "
                                 f"measures CPU backends for now (CPU backends: {', '.join(_cpu_names())})")
        names = list(dict.fromkeys(requested))
    else:
        names = _cpu_names()
    chosen, skipped = [], []
    for name in names:
        try:
            chosen.append((name, registry.load(name, caller="logscan bench")))
        except (ImportError, RuntimeError) as error:
            skipped.append(f"backend {name}: skipped (not available here: {_first_line(error)})")
    return chosen, skipped


def _cpu_names():
    return [name for name in registry.names() if registry.spec(name).device == "cpu"]


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def select_methods(backend_name, module, wanted=None):
    """The methods of a loaded backend to bench (all of ``module.methods`` when ``wanted`` is None)."""
    methods = tuple(module.methods)
    if not wanted:
        return methods
    return tuple(m for m in methods if m in wanted)


# ---------------------------------------------------------------- the whole run
@dataclass
class Config:
    """What ``logscan bench`` was asked for (see :func:`run`)."""

    shapes: Sequence[tuple[int, int, int]] = DEFAULT_SHAPES
    dtype: str = "float32"
    backends: Sequence[str] | None = None
    methods: Sequence[str] | None = None
    quick: bool = False
    repeats: int | None = None

    @property
    def timed_repeats(self) -> int:
        if self.repeats is not None:
            return self.repeats
        return 2 if self.quick else 5


def run(config, *, echo=print, progress=None, extra_sources=()):
    """Run the bench and print its tables.

    Parameters
    ----------
    config : Config
    echo : callable
        Prints one line (``print`` by default).
    progress : callable, optional
        Called with a short text before each row.
    extra_sources : sequence of callable
        More rows: each callable takes the :class:`Problem` of a shape and
        yields :class:`Candidate` objects. This is where GPU rows plug in:
        their ``call`` copies nothing per call (the device arrays are made
        once, from the problem's host arrays), their ``timer`` is
        ``Timer(sync=<the device's synchronize>)`` and their ``to_numpy``
        brings a result back to the host for the difference column.

    Returns
    -------
    dict
        Everything measured, as saved by ``--json``: ``meta`` (versions,
        CPU, settings), ``skipped`` (lines), and ``shapes`` (the rows of each shape).

    Raises
    ------
    BenchError
        For a bad configuration; nothing is timed then.
    """
    if str(config.dtype) not in DTYPES:
        raise BenchError(f"dtype must be one of {', '.join(DTYPES)}, got {config.dtype!r}")
    if config.repeats is not None and config.repeats < 1:
        raise BenchError(f"repeats must be at least 1, got {config.repeats}")
    chosen, skipped = select_backends(config.backends)
    plan = [(name, select_methods(name, module, config.methods)) for name, module in chosen]
    if config.methods:
        known = {m for _, module in chosen for m in module.methods}
        unknown = [m for m in config.methods if m not in known]
        if unknown:
            raise BenchError(f"unknown method {unknown[0]!r} for the backends benched; their methods: "
                             f"{', '.join(sorted(known)) or 'none'}")
    meta = _meta(config)
    for line in _header(meta):
        echo(line)
    for line in skipped:
        echo(line)
    sources = [lambda problem, name=name, methods=methods: cpu_candidates(problem, name, methods)
               for name, methods in plan if methods]
    sources.extend(extra_sources)
    results = []
    for shape in config.shapes:
        result = measure_shape(shape, config.dtype, sources, repeats=config.timed_repeats,
                               skip_slow=config.quick, progress=progress)
        echo("")
        for line in format_table(result):
            echo(line)
        results.append(result)
    return {"meta": meta, "skipped": skipped, "shapes": [_shape_dict(r) for r in results]}


def save_json(report, path):
    """Write :func:`run`'s report to ``path`` as JSON."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")


def _meta(config):
    return {
        "logscan": logscan.__version__,
        "versions": _machine.versions(),
        "cpu": _machine.cpu_info(),
        "dtype": str(config.dtype),
        "axis": AXIS,
        "repeats": config.timed_repeats,
        "warmup": 1,
        "quick": bool(config.quick),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _shape_dict(result):
    return {"shape": list(result.shape), "dtype": result.dtype, "copy_seconds": result.copy_seconds,
            "copy_bytes": result.copy_bytes, "copy_bandwidth_bytes_per_s": result.copy_bandwidth,
            "rows": [{**asdict(row), "shape": list(row.shape)} for row in result.rows]}


# ---------------------------------------------------------------- printing
def _format_seconds(seconds):
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def _format_bytes(nbytes):
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{nbytes} B"


def _header(meta):
    cpu = meta["cpu"]
    simd = ", ".join(cpu["simd"]) or "unknown"
    return [
        f"logscan {meta['logscan']} bench, numpy {meta['versions']['numpy']}, numba {meta['versions']['numba']}",
        f"CPU: {cpu['model']} ({cpu['usable_cores']} usable of {cpu['logical_cores']} logical cores; SIMD: {simd})",
        f"{meta['dtype']}, scan along axis {meta['axis']}; time = best of {meta['repeats']} interleaved rounds "
        f"(every row once a round) after {meta['warmup']} warm-up call{'s' if meta['warmup'] != 1 else ''}",
        "speedup = NumPy-loop time / time;  x f+b loops (backward rows) = (NumPy forward loop + reverse loop) / time",
        "copy bw = bytes moved per second / np.copyto's (forward moves 3 arrays, backward 6, a copy 2);  "
        "max |diff| = vs the NumPy loop's result",
    ]


_COLUMNS = ("op", "backend", "method", "time", "speedup", "x f+b loops", "copy bw", "max |diff|")


def format_table(result):
    """Lines of the table of one shape."""
    B, T, D = result.shape
    lines = [f"(B, T, D) = ({B}, {T}, {D}), {result.dtype}: np.copyto of {_format_bytes(result.copy_bytes)} "
             f"takes {_format_seconds(result.copy_seconds)} ({result.copy_bandwidth / 1e9:.1f} GB/s)"]
    cells = [_COLUMNS]
    for row in result.rows:
        if row.seconds is None:
            cells.append((row.op, row.backend, row.method, row.note))
            continue
        cells.append((row.op, row.backend, row.method, _format_seconds(row.seconds),
                      "-" if row.speedup is None else f"{row.speedup:.2f}x",
                      "-" if row.speedup_loops is None else f"{row.speedup_loops:.2f}x",
                      "-" if row.copy_fraction is None else f"{100 * row.copy_fraction:.1f}%",
                      "-" if row.max_abs_diff is None else f"{row.max_abs_diff:.1e}"))
    full = [c for c in cells if len(c) == len(_COLUMNS)]
    widths = [max(len(c[k]) for c in full) for k in range(len(_COLUMNS))]
    right = {3, 4, 5, 6, 7}
    for c in cells:
        if len(c) < len(_COLUMNS):  # a skipped row: its note spans the measure columns
            lines.append("  ".join(c[k].ljust(widths[k]) for k in range(3)) + "  " + c[3])
            continue
        lines.append("  ".join(c[k].rjust(widths[k]) if k in right else c[k].ljust(widths[k])
                               for k in range(len(c))).rstrip())
    return lines
