"""What this machine is: CPU, GPU and package versions, read cheaply.

Used by ``logscan info`` and by the headers of ``logscan bench``. Nothing
here imports a GPU package unless its module is installed, and nothing
here raises: a fact that cannot be read is reported as unknown.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform

# The SIMD extensions worth knowing about when reading CPU timings.
_SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_bf16",
               "avx512_fp16", "amx_tile", "neon", "asimd", "sve", "sve2")


def _cpuinfo_fields(path="/proc/cpuinfo"):
    """The first value of each field of ``/proc/cpuinfo`` (empty when there is none, e.g. on macOS)."""
    fields = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_info():
    """Model, core counts and SIMD flags of the CPU.

    Returns
    -------
    dict
        ``model`` (str), ``logical_cores`` (int or None), ``usable_cores``
        (int or None: the cores this process may run on), ``simd`` (list of
        str, empty when unknown), ``machine`` (str, e.g. ``"x86_64"``).
    """
    fields = _cpuinfo_fields()
    model = fields.get("model name") or fields.get("Model") or platform.processor() or "unknown"
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "model": model,
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "simd": [flag for flag in _SIMD_FLAGS if flag in flags],
    }


def package_version(name):
    """Installed version of distribution ``name`` without importing it, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions():
    """Versions of Python and of the packages logscan uses (None when not installed).

    CuPy is published under several names (``cupy-cuda12x``, ``cupy-cuda13x``,
    ``cupy``); the first one installed is reported as ``"cupy"``, with its name.
    """
    found = {"python": platform.python_version()}
    for name in ("numpy", "numba", "numba-cuda"):
        found[name] = package_version(name)
    found["cupy"] = None
    for name in ("cupy-cuda13x", "cupy-cuda12x", "cupy"):
        version = package_version(name)
        if version is not None:
            found["cupy"] = version if name == "cupy" else f"{version} ({name})"
            break
    return found


def _installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _gpus_from_cupy():
    cupy = importlib.import_module("cupy")
    runtime = cupy.cuda.runtime
    gpus = []
    for index in range(runtime.getDeviceCount()):
        props = runtime.getDeviceProperties(index)
        name = props["name"]
        name = name.decode() if isinstance(name, bytes) else str(name)
        gpus.append({"index": index, "name": name, "compute_capability": f"{props['major']}.{props['minor']}",
                     "memory_bytes": int(props["totalGlobalMem"]), "seen_by": "cupy"})
    return gpus


def _gpus_from_numba_cuda():
    cuda = importlib.import_module("numba.cuda")
    if not cuda.is_available():
        return []
    gpus = []
    for index, device in enumerate(cuda.gpus):
        name = device.name
        name = name.decode() if isinstance(name, bytes) else str(name)
        gpus.append({"index": index, "name": name,
                     "compute_capability": ".".join(map(str, device.compute_capability)),
                     "memory_bytes": None, "seen_by": "numba-cuda"})
    return gpus


def gpu_info():
    """The CUDA GPUs a GPU package of this environment can see.

    CuPy is asked first, then numba-cuda; a package is imported only when
    it is installed, and any failure (no driver, no device) just means no
    GPU is seen.

    Returns
    -------
    gpus : list of dict
        ``index``, ``name``, ``compute_capability``, ``memory_bytes`` (None
        when unknown), ``seen_by``.
    note : str
        Why the list is empty (or which package saw the GPUs).
    """
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return [], "NUMBA_ENABLE_CUDASIM=1 is set: numba's CUDA simulator, no real GPU is used"
    probes = [("cupy", "cupy", _gpus_from_cupy), ("numba-cuda", "numba_cuda", _gpus_from_numba_cuda)]
    installed = [(label, probe) for label, module, probe in probes if _installed(module)]
    if not installed:
        return [], "no GPU package installed (pip install 'logscan[cuda12]' or 'logscan[cuda13]')"
    reasons = []
    for label, probe in installed:
        try:
            gpus = probe()
        except Exception as error:  # no driver, no device, broken install: all mean "none seen"
            reasons.append(f"{label}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
            continue
        if gpus:
            return gpus, f"seen by {label}"
        reasons.append(f"{label}: no CUDA device")
    return [], "; ".join(reasons)

