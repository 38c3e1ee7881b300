"""Array-namespace selection: the same nn code runs on NumPy and CuPy arrays.

CuPy is imported only when an argument already is a CuPy array (so CuPy must
be installed for it to exist) or when the GPU is asked for explicitly;
importing :mod:`logscan.nn` never touches it.
"""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np


def array_module(*arrays):
    """``cupy`` if any argument is a CuPy array, else ``numpy``.

    Examples
    --------
    >>> import numpy as np
    >>> array_module(np.zeros(2)) is np
    True
    """
    for x in arrays:
        if type(x).__module__.split(".")[0] == "cupy":
            return importlib.import_module("cupy")
    return np


def device_module(device):
    """The array module for ``device`` ("cpu" or "gpu"); a clear error when CuPy is missing."""
    if device == "cpu":
        return np
    if device == "gpu":
        if importlib.util.find_spec("cupy") is None:
            raise RuntimeError("device 'gpu' needs CuPy: pip install 'logscan[cuda12]' (or cuda13)")
        cupy = importlib.import_module("cupy")
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as error:  # no driver, or a driver that cannot start: CuPy's own words
            raise RuntimeError(f"device 'gpu': CuPy finds no usable GPU ({type(error).__name__}: {error})") from None
        if count < 1:
            raise RuntimeError("device 'gpu': CuPy finds no GPU")
        return cupy
    raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")


def to_host(x):
    """A NumPy array of ``x`` (a copy from the GPU for CuPy arrays)."""
    if type(x).__module__.split(".")[0] == "cupy":
        return x.get()
    return np.asarray(x)


ONE_HOT_MAX_ROWS = 1024


def sum_rows_by_index(n_rows, indices, values, *, one_hot=None):
    """``out[r] = sum(values[k] for k with indices[k] == r)``, shape ``(n_rows, values.shape[1])``.

    The same bits run after run: NumPy adds in order (``np.add.at``); on CuPy,
    up to ``ONE_HOT_MAX_ROWS`` rows, the sum is the product of the one-hot
    matrix of ``indices`` with ``values`` (``cupyx.scatter_add`` adds with
    atomics, in whatever order the threads come, so its last bits change from
    run to run, and a seeded training run would not repeat itself). Beyond
    that, on CuPy, ``scatter_add`` (the one-hot matrix would be too big).

    Parameters
    ----------
    n_rows : int
    indices : int array (N,)
    values : float array (N, W)
    one_hot : bool, optional
        Force the one-hot product (True) or the indexed add (False); by
        default as described above.

    Examples
    --------
    >>> import numpy as np
    >>> sum_rows_by_index(3, np.array([2, 0, 2]), np.array([[1.0], [2.0], [4.0]])).ravel().tolist()
    [2.0, 0.0, 5.0]
    """
    xp = array_module(values)
    if one_hot is None:
        one_hot = xp is not np and n_rows <= ONE_HOT_MAX_ROWS
    if one_hot:
        matrix = (indices[:, None] == xp.arange(n_rows)).astype(values.dtype)
        return matrix.T @ values
    out = xp.zeros((n_rows, values.shape[1]), values.dtype)
    if xp is np:
        np.add.at(out, indices, values)
    else:
        importlib.import_module("cupyx").scatter_add(out, indices, values)
    return out
