"""Parallel kernels that are safe in several threads at once and in forked processes.

Numba runs ``parallel=True`` code on one threading layer per process,
chosen at the first parallel call (``NUMBA_THREADING_LAYER``; by default
the first of tbb, omp, workqueue that loads). With numba 0.68 on Linux:

- ``omp`` with GNU OpenMP (what a pip install gets where libgomp is
  present) is threadsafe but not fork-safe: a process forked after its
  parent ran a parallel kernel (``multiprocessing``'s default start method
  on Linux) is terminated by numba at its first parallel call ("fork()
  called from a process already using GNU OpenMP, this is unsafe").
- ``workqueue`` is fork-safe but not threadsafe: two Python threads in
  parallel kernels at once terminate the process ("Concurrent access has
  been detected").
- ``tbb`` (``pip install tbb``) is both.

Choosing the layer for the user would change it for all their numba code,
and ``workqueue`` costs about 0.13 ms more than ``omp`` per call
(measured: a (1, 4, 16) float32 scan, 0.22 against 0.09 ms). So the
layer stays numba's choice (or the user's), and :func:`parallel_kernel`
compiles every parallel kernel twice, as itself and as a serial twin
(``prange`` run as ``range``, cached under its own name). A call runs the
twin on one thread when it would use one thread anyway
(``numba.get_num_threads() == 1``, or inside :class:`at_most` ``(1)``: the
backend's choice for small arrays), which also skips the parallel launch, or
in a process forked from one whose OpenMP threads had started; otherwise
the parallel kernel, one call at a time when the layer is not threadsafe.
"""

from __future__ import annotations

import os
import threading
import types

import numba
from numba import njit

THREADSAFE_LAYERS = ("tbb", "omp")
_lock = threading.Lock()
_forked_from_openmp = False
_layer_loaded = False
_local = threading.local()  # per Python thread, like numba's own thread count: ``serial`` set by at_most(1)


def current_layer():
    """The threading layer numba uses, or None before its first parallel call."""
    try:
        return numba.threading_layer()
    except ValueError:  # "Threading layer is not initialized."
        return None


def _after_fork_in_child():
    global _lock, _forked_from_openmp
    _lock = threading.Lock()  # a child forked while a thread of the parent held it would wait forever
    _forked_from_openmp = _forked_from_openmp or current_layer() == "omp"


os.register_at_fork(after_in_child=_after_fork_in_child)


class ParallelKernel:
    """A ``parallel=True`` kernel and its serial twin, called as one function (see the module docstring)."""

    def __init__(self, py_func, options):
        self.py_func = py_func
        self.parallel = njit(parallel=True, **options)(py_func)
        twin = types.FunctionType(py_func.__code__, py_func.__globals__, py_func.__name__ + "_serial",
                                  py_func.__defaults__, py_func.__closure__)
        twin.__qualname__ = py_func.__qualname__ + "_serial"  # numba names its cache files after it
        twin.__module__ = py_func.__module__
        self.serial = njit(parallel=False, **options)(twin)
        self.__doc__, self.__name__ = py_func.__doc__, py_func.__name__

    def __call__(self, *args):
        if _forked_from_openmp or getattr(_local, "serial", False) or numba.get_num_threads() == 1:
            return self.serial(*args)
        if current_layer() in THREADSAFE_LAYERS:
            return self.parallel(*args)
        with _lock:
            return self.parallel(*args)


def _load_layer():
    """Load numba's threading layer, once per process (asking for the thread count does).

    The serial twins may still call ``numba.get_thread_id()`` (the tree
    kernels index their per-thread workspace with it), which reads a
    thread-local of the layer: before the layer is loaded that read crashed
    the process (a first call on a small array with ``method="blelloch"``).
    """
    global _layer_loaded
    if not _layer_loaded:
        numba.get_num_threads()
        _layer_loaded = True


class at_most:  # noqa: N801  (used as a function: ``with at_most(n):``)
    """Context: the parallel kernels called inside run on at most ``threads`` threads.

    One thread means the serial twins, with no parallel launch and without
    touching numba's thread count (two calls to ``numba.set_num_threads``
    and the launch cost a few microseconds, a large part of a call on a
    small array); more lowers numba's count for this Python thread while
    inside.
    """

    __slots__ = ("threads", "saved")

    def __init__(self, threads):
        self.threads = threads

    def __enter__(self):
        if self.threads <= 1:
            _load_layer()
            self.saved = getattr(_local, "serial", False)
            _local.serial = True
        else:
            self.saved = numba.get_num_threads()
            if self.threads < self.saved:
                numba.set_num_threads(self.threads)

    def __exit__(self, *exc):
        if self.threads <= 1:
            _local.serial = self.saved
        elif self.threads < self.saved:
            numba.set_num_threads(self.saved)


def parallel_kernel(**options):
    """Decorator: ``njit(parallel=True, **options)`` with a serial twin, as a :class:`ParallelKernel`."""

    def wrap(py_func):
        return ParallelKernel(py_func, options)

    return wrap
