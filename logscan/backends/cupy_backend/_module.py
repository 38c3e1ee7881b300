"""The compiled CUDA modules of the CuPy backend.

Each ``kernels/*.cu`` file is one algorithm family. Its kernels are C++
templates on the element type (``float``, ``double``, ``logscan::half_t``
and ``logscan::bfloat16_t``: 16 bits in memory, float in registers) and on
the space (``true`` for log
space); some also on the vector width. :data:`KERNELS` lists every kernel
and the template arguments the Python side asks for, and
:func:`name_expressions` spells them out exactly as NVRTC must instantiate
them, e.g. ``logscan_per_channel_forward<float, true, 4>``.

A file is compiled by ``cupy.RawModule(code=..., name_expressions=...)`` the
first time one of its kernels is fetched on a device, once per process and
device (CuPy also keeps compiled binaries on disk between processes). The
local ``#include "..."`` lines are expanded here, so the code CuPy hashes for
its cache is the whole program, and no include path is needed.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np

KERNEL_DIR = Path(__file__).with_name("kernels")
COMPILE_OPTIONS = ("-std=c++17",)

#: Per dtype name: the C++ storage type the kernels are instantiated with, and its size in bytes (known here
#: without importing ml_dtypes, which alone gives NumPy a bfloat16).
ELEMENT_TYPES = {"float32": ("float", 4), "float64": ("double", 8), "float16": ("logscan::half_t", 2),
                 "bfloat16": ("logscan::bfloat16_t", 2)}
_ALL = tuple(ELEMENT_TYPES)
_WIDE = ("float32", "float64")  # the textbook kernels: the core computes half precision through float32 copies


class KernelInfo(NamedTuple):
    """Where a kernel lives and which instantiations the Python side uses."""

    file: str
    dtypes: tuple[str, ...]
    vectorized: bool = False  # takes a third template argument, the vector width
    templated: bool = True    # False: a plain kernel, fetched by its name alone


KERNELS: dict[str, KernelInfo] = {
    "logscan_per_channel_forward": KernelInfo("per_channel.cu", _ALL, True),
    "logscan_per_channel_backward": KernelInfo("per_channel.cu", _ALL, True),
    "logscan_chunked_forward_reduce": KernelInfo("chunked.cu", _ALL),
    "logscan_chunked_forward_apply": KernelInfo("chunked.cu", _ALL),
    "logscan_chunk_carry_scan": KernelInfo("chunked.cu", _ALL),
    "logscan_chunked_backward_reduce": KernelInfo("chunked.cu", _ALL),
    "logscan_chunked_backward_apply": KernelInfo("chunked.cu", _ALL),
    "logscan_hillis_steele_reduce": KernelInfo("hillis_steele.cu", _WIDE),
    "logscan_hillis_steele_scan": KernelInfo("hillis_steele.cu", _WIDE),
    "logscan_blelloch_reduce": KernelInfo("blelloch.cu", _WIDE),
    "logscan_blelloch_scan": KernelInfo("blelloch.cu", _WIDE),
    "logscan_backward_next_weight": KernelInfo("elementwise.cu", _WIDE),
    "logscan_backward_gradients": KernelInfo("elementwise.cu", _WIDE),
    "logscan_lookback_forward": KernelInfo("lookback.cu", _ALL),
    "logscan_lookback_backward": KernelInfo("lookback.cu", _ALL),
    "logscan_lookback_reset": KernelInfo("lookback.cu", (), templated=False),
}


def dtype_name(dtype) -> str:
    """The name of a dtype (a name stays as it is, so that "bfloat16" needs no ml_dtypes)."""
    return dtype if isinstance(dtype, str) else np.dtype(dtype).name


def vector_widths(dtype) -> tuple[int, ...]:
    """The vector widths a vectorized kernel is built with: 1 and one 16-byte access."""
    return (1, 16 // ELEMENT_TYPES[dtype_name(dtype)][1])


def template_name(kernel: str, dtype, *, log: bool, vec: int | None = None) -> str:
    """The C++ name of one instantiation, e.g. ``logscan_blelloch_scan<double, false>``."""
    info = KERNELS[kernel]
    if not info.templated:
        return kernel
    dtype = dtype_name(dtype)
    if dtype not in info.dtypes:
        raise TypeError(f"logscan: kernel {kernel} has no {dtype} version")
    args = [ELEMENT_TYPES[dtype][0], "true" if log else "false"]
    if info.vectorized:
        if vec not in vector_widths(dtype):
            raise ValueError(f"logscan: kernel {kernel} takes a vector width in {vector_widths(dtype)}, got {vec}")
        args.append(str(vec))
    elif vec not in (None, 1):
        raise ValueError(f"logscan: kernel {kernel} is not vectorized")
    return f"{kernel}<{', '.join(args)}>"


def name_expressions(file: str) -> tuple[str, ...]:
    """Every instantiation of the kernels of ``file`` that the Python side may fetch."""
    names = []
    for kernel, info in KERNELS.items():
        if info.file != file:
            continue
        if not info.templated:
            names.append(kernel)
            continue
        for dtype in info.dtypes:
            for log in (True, False):
                for vec in vector_widths(dtype) if info.vectorized else (None,):
                    names.append(template_name(kernel, dtype, log=log, vec=vec))
    return tuple(names)


def files() -> tuple[str, ...]:
    """The kernel files, in the order of :data:`KERNELS`."""
    return tuple(dict.fromkeys(info.file for info in KERNELS.values()))


_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$', re.MULTILINE)


def source(file: str) -> str:
    """The text of ``file`` with its local includes expanded (each header once)."""
    seen: set[str] = set()

    def expand(name: str) -> str:
        if name in seen:
            return ""
        seen.add(name)
        text = (KERNEL_DIR / name).read_text()
        text = text.replace("#pragma once\n", "")
        return _INCLUDE.sub(lambda m: expand(m.group(1)), text)

    return expand(file)


_lock = threading.Lock()
_modules: dict[tuple[str, int], object] = {}
_functions: dict[tuple[str, int], object] = {}


def get_kernel(kernel: str, dtype, *, log: bool, vec: int | None = None):
    """The ``cupy.RawKernel`` of one instantiation on the current device (compiled on first use)."""
    import cupy  # noqa: PLC0415  (CuPy loads only when a kernel is fetched)

    name = template_name(kernel, dtype, log=log, vec=vec)
    device = cupy.cuda.runtime.getDevice()
    found = _functions.get((name, device))
    if found is not None:
        return found
    with _lock:
        file = KERNELS[kernel].file
        module = _modules.get((file, device))
        if module is None:
            module = cupy.RawModule(code=source(file), options=COMPILE_OPTIONS,
                                    name_expressions=name_expressions(file))
            _modules[(file, device)] = module
        function = module.get_function(name)
        _functions[(name, device)] = function
        return function
