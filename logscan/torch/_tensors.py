"""Tensors at the torch adapter's boundary: checks, the arrays the library takes, and the way back.

CPU tensors are handed to the library as NumPy views (no copy) and results come
back through :func:`torch.from_numpy` (no copy). CUDA tensors are handed over as
they are (the device front door reads ``__cuda_array_interface__`` and allocates
its outputs and workspace with :func:`torch.empty`, that is from torch's caching
allocator) with torch's current stream named explicitly, because torch's
``__cuda_array_interface__`` carries no stream. :func:`library_array` and
:func:`from_library` do the same for :mod:`logscan.nn`, whose functions take
NumPy or CuPy arrays.
"""

from __future__ import annotations

import contextlib
import functools
import importlib

import torch

FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# The dtypes the library takes as they are, per device type. NumPy has no bfloat16, so the CPU backends get
# float32 tensors; on CUDA the cupy backend's kernels read and write bfloat16 themselves (see compute_dtype).
NATIVE = {"cpu": (torch.float16, torch.float32, torch.float64), "cuda": (torch.float16, torch.float32, torch.float64)}


def check_tensor(caller, name, x, *, optional=False):
    """TypeError unless ``x`` is a floating torch.Tensor (or None when ``optional``)."""
    if x is None and optional:
        return
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{caller}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOATS:
        raise TypeError(f"{caller}: {name} must have a floating dtype (float16, bfloat16, float32 or float64), "
                        f"got {x.dtype}")


def check_same_device(caller, named):
    """ValueError unless every non-None tensor of ``named`` lives on one CPU or CUDA device."""
    devices = {name: x.device for name, x in named.items() if x is not None}
    if len(set(devices.values())) > 1:
        found = ", ".join(f"{name} on {device}" for name, device in devices.items())
        raise ValueError(f"{caller}: all tensors must be on one device, got {found}")
    for name, device in devices.items():
        if device.type not in NATIVE:
            raise ValueError(f"{caller}: {name} is on device {device}; logscan computes on the CPU and on CUDA "
                             f"devices")


def compute_dtype(dtype, device):
    """The dtype handed to the library for ``dtype`` on ``device``: itself, or float32 for what it cannot take."""
    if dtype in NATIVE[device.type] or (dtype == torch.bfloat16 and device.type == "cuda" and _cuda_bfloat16()):
        return dtype
    return torch.float32


@functools.cache
def _cuda_bfloat16():
    """Whether CUDA bfloat16 tensors go to the library as they are: the cupy backend (whose kernels read and
    write bfloat16) is there, and ml_dtypes gives the core its bfloat16 dtype. Otherwise they are cast."""
    from logscan import _device, registry  # noqa: PLC0415  (the device front door loads only when used)

    return _device.accepts_bfloat16() and registry.spec("cupy").is_available()


def normalize_dim(caller, dim, ndim):
    """``dim`` in ``[0, ndim)``; IndexError, as torch raises, when out of range."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"{caller}: dim must be an int, got {type(dim).__name__}")
    if ndim == 0:
        raise ValueError(f"{caller}: the inputs must have at least one dimension to scan along, got 0-d tensors")
    if not -ndim <= dim < ndim:
        raise IndexError(f"{caller}: dim {dim} is out of range for tensors of {ndim} dimensions "
                         f"(expected in [{-ndim}, {ndim - 1}])")
    return dim % ndim


def stream_of(x):
    """torch's current stream on ``x``'s device (what the GPU work is enqueued on), None on the CPU."""
    return torch.cuda.current_stream(x.device) if x.device.type == "cuda" else None


def front_door(x):
    """What the front door takes for tensor ``x``: a NumPy view on the CPU, the detached tensor on CUDA."""
    if x is None:
        return None
    x = x.detach()  # a tensor that requires grad exports neither DLPack nor __cuda_array_interface__
    return x.numpy() if x.device.type == "cpu" else x


def from_front_door(result):
    """A tensor of a front-door result (NumPy from the CPU path, a tensor already from the CUDA path)."""
    if result is None or isinstance(result, torch.Tensor):
        return result
    return torch.from_numpy(result)


def library_array(x):
    """``x`` as the array family :mod:`logscan.nn` computes on: NumPy (CPU) or CuPy (CUDA), no copy."""
    if x is None:
        return None
    x = x.detach()
    if x.device.type == "cpu":
        return x.numpy()
    return importlib.import_module("cupy").from_dlpack(x)


def from_library(x):
    """A tensor viewing a NumPy or CuPy array (no copy)."""
    if x is None:
        return None
    return torch.from_numpy(x) if type(x).__module__.startswith("numpy") else torch.from_dlpack(x)


def library_stream(x):
    """A context in which CuPy works on torch's current stream of ``x``'s device (nothing on the CPU)."""
    if x.device.type != "cuda":
        return contextlib.nullcontext()
    cupy = importlib.import_module("cupy")
    return cupy.cuda.ExternalStream(torch.cuda.current_stream(x.device).cuda_stream, x.device.index or 0)
