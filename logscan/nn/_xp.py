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
        return importlib.import_module("cupy")
    raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")


def to_host(x):
    """A NumPy array of ``x`` (a copy from the GPU for CuPy arrays)."""
    if type(x).__module__.split(".")[0] == "cupy":
        return x.get()
    return np.asarray(x)


def scatter_add(target, indices, values):
    """``target[indices[k]] += values[k]`` with repeated indices accumulated (NumPy and CuPy)."""
    xp = array_module(target)
    if xp is np:
        np.add.at(target, indices, values)
    else:
        importlib.import_module("cupyx").scatter_add(target, indices, values)
    return target
