"""Array families at the front door: what an argument is, where it lives, how to give it back.

Host arrays are NumPy arrays, or any object exposing ``__array_interface__``
or a CPU ``__dlpack__`` (a torch CPU tensor, a JAX CPU array); they are viewed
as NumPy without a copy and results go back to the caller's family. Device
arrays expose ``__cuda_array_interface__`` or a CUDA ``__dlpack__``; they are
handled by the GPU backends.
"""

from __future__ import annotations

import importlib

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_DLPACK_CPU, _DLPACK_CUDA, _DLPACK_CUDA_HOST, _DLPACK_CUDA_MANAGED = 1, 2, 3, 13


def device_of(caller, name, x):
    """"cpu" or "cuda" for an array argument; TypeError for anything that is not an array."""
    if isinstance(x, np.ndarray):
        return "cpu"
    if getattr(x, "requires_grad", False) is True and type(x).__module__.split(".")[0] == "torch":
        # Such a tensor exports neither DLPack nor __cuda_array_interface__ (the latter raises a RuntimeError
        # that hasattr does not catch); the front door records no gradients, logscan.torch does.
        raise TypeError(f"{caller}: {name} is a torch tensor that requires grad, and this function records no "
                        f"gradients; use the differentiable ops of logscan.torch, or pass {name}.detach()")
    if hasattr(x, "__cuda_array_interface__"):
        return "cuda"
    if hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__"):
        kind = int(x.__dlpack_device__()[0])
        if kind == _DLPACK_CPU:
            return "cpu"
        if kind in (_DLPACK_CUDA, _DLPACK_CUDA_MANAGED):
            return "cuda"
        raise TypeError(f"{caller}: {name} lives on DLPack device type {kind}, which logscan does not support "
                        f"(expected CPU or CUDA)")
    if hasattr(x, "__array_interface__"):
        return "cpu"
    raise TypeError(f"{caller}: {name} must be an array (numpy.ndarray, or an object with "
                    f"__array_interface__, __cuda_array_interface__ or __dlpack__), got {type(x).__name__}")


def common_device(caller, named):
    """The one device of all given (non-None) arrays; TypeError when host and device are mixed."""
    devices = {name: device_of(caller, name, x) for name, x in named.items() if x is not None}
    kinds = set(devices.values())
    if len(kinds) > 1:
        host = [n for n, d in devices.items() if d == "cpu"]
        dev = [n for n, d in devices.items() if d == "cuda"]
        raise TypeError(f"{caller}: cannot mix host and device arrays: {', '.join(host)} on the CPU, "
                        f"{', '.join(dev)} on a CUDA device; move them to one place first")
    return kinds.pop() if kinds else "cpu"


def dlpack_device(x):
    """``(device type, device id)`` from ``x.__dlpack_device__()``, or None when ``x`` is no DLPack producer."""
    if not (hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__")):
        return None
    kind, index = x.__dlpack_device__()
    return int(kind), int(index)


def is_cuda_dlpack(x):
    """True for a DLPack producer on a CUDA device (plain or managed memory)."""
    found = dlpack_device(x)
    return found is not None and found[0] in (_DLPACK_CUDA, _DLPACK_CUDA_MANAGED)


def to_numpy(x, caller="logscan", name="array"):
    """A NumPy view of a host array (no copy); TypeError naming ``name`` when NumPy cannot take it.

    A masked array with masked elements is refused: the scans read every
    element, and ignoring the mask would be a silently wrong answer.
    """
    if isinstance(x, np.ma.MaskedArray):
        if np.ma.is_masked(x):
            raise TypeError(f"{caller}: {name} is a masked array with masked elements, and logscan reads every "
                            f"element; pass {name}.filled(value) with the value a masked step should take "
                            f"(a step that changes nothing: log_a = 0 and log_b = -inf, or a = 1 and b = 0)")
        return x.data
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "__dlpack__") and not hasattr(x, "__array_interface__"):
        try:
            return np.from_dlpack(x)
        except Exception as error:  # noqa: BLE001  (any producer failure becomes one clear message)
            raise TypeError(f"{caller}: {name} is a CPU DLPack array that NumPy cannot import zero-copy "
                            f"({type(error).__name__}: {error}); pass a numpy.ndarray instead") from error
    return np.asarray(x)


def like(result, template):
    """Return ``result`` (NumPy) in the array family of ``template``, zero-copy where possible."""
    if template is None or isinstance(template, np.ndarray) or result is None:
        return result
    root = type(template).__module__.split(".")[0]
    if root == "torch":
        return importlib.import_module("torch").from_dlpack(result)
    if root in ("jax", "jaxlib"):
        return importlib.import_module("jax.numpy").from_dlpack(result)
    return result


def check_float(caller, name, x):
    """TypeError unless ``x`` has a real floating dtype logscan computes in."""
    check_float_dtype(caller, name, x.dtype)


def check_float_dtype(caller, name, dtype):
    """TypeError unless ``dtype`` is float16, float32 or float64 in the machine's byte order."""
    if dtype not in FLOAT_DTYPES:
        if dtype.newbyteorder("=") in FLOAT_DTYPES:
            raise TypeError(f"{caller}: {name} must be in the machine's byte order, got {dtype} (swapped); "
                            f"convert it with {name}.astype({dtype.newbyteorder('=').name!r})")
        raise TypeError(f"{caller}: {name} must have a real floating dtype (float16, float32 or float64), "
                        f"got {dtype}")
