"""The backend registry: name -> how to check availability and how to load.

Backends register a :class:`BackendSpec` (cheap: no heavy import) and are
loaded on first use. ``backend="auto"`` takes the available backend of the
highest priority for the device the arrays live on.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

OPS = ("log_scan", "log_scan_backward", "linear_scan", "linear_scan_backward")
BASE_METHODS = ("sequential", "hillis_steele", "blelloch")


class Backend(Protocol):
    """What a loaded backend module exposes (see :mod:`logscan.backends`)."""

    methods: tuple[str, ...]

    def choose_method(self, op: str, dtype, outer: int, T: int, inner: int) -> str: ...
    def workspace_size(self, op: str, dtype, outer: int, T: int, inner: int, method: str) -> int: ...
    def log_scan(self, log_a, log_b, log_h0, out, method, workspace) -> None: ...
    def log_scan_backward(self, grad_log_h, log_a, log_b, log_h, log_h0,
                          grad_log_a, grad_log_b, grad_log_h0, method, workspace) -> None: ...
    def linear_scan(self, a, b, h0, out, method, workspace) -> None: ...
    def linear_scan_backward(self, grad_h, a, b, h, h0,
                             grad_a, grad_b, grad_h0, method, workspace) -> None: ...


@dataclass(frozen=True)
class BackendSpec:
    """A registered backend.

    Parameters
    ----------
    name : str
        What users pass as ``backend=``.
    module : str
        Dotted path of the module implementing :class:`Backend`; imported on first use.
    device : {"cpu", "cuda"}
        Where the arrays it takes live.
    priority : int
        Higher wins for ``backend="auto"``.
    requires : tuple of str
        Top-level packages that must be importable (checked with
        :func:`importlib.util.find_spec`, which imports nothing).
    extra : str
        The pip extra that provides ``requires``, named in error messages.
    probe : callable, optional
        Further availability check (for example, "a GPU is present"); called
        only when the backend is asked for, never at import.
    """

    name: str
    module: str
    device: str
    priority: int
    requires: tuple[str, ...] = ()
    extra: str = ""
    probe: Callable[[], bool] | None = field(default=None, compare=False)

    def missing(self) -> list[str]:
        return [pkg for pkg in self.requires if importlib.util.find_spec(pkg) is None]

    def module_present(self) -> bool:
        """Whether this copy of logscan ships the backend's module (found, not imported)."""
        try:
            return importlib.util.find_spec(self.module) is not None
        except ModuleNotFoundError:
            return False

    def is_available(self) -> bool:
        if self.missing() or not self.module_present():
            return False
        return self.probe is None or bool(self.probe())


_SPECS: dict[str, BackendSpec] = {}
_LOADED: dict[str, Backend] = {}


def register(spec: BackendSpec) -> None:
    """Add a backend; a later registration under the same name replaces it."""
    _SPECS[spec.name] = spec
    _LOADED.pop(spec.name, None)


def names() -> tuple[str, ...]:
    """Every registered backend name, available or not."""
    return tuple(_SPECS)


def spec(name: str) -> BackendSpec:
    return _SPECS[name]


def available(device: str | None = None) -> list[str]:
    """Names of the backends usable here, highest priority first."""
    specs = sorted(_SPECS.values(), key=lambda s: -s.priority)
    return [s.name for s in specs if (device is None or s.device == device) and s.is_available()]


def load(name: str, *, caller: str = "logscan") -> Backend:
    """Import and return the backend ``name``; clear errors when it cannot be used."""
    if name in _LOADED:
        return _LOADED[name]
    if name not in _SPECS:
        raise ValueError(f"{caller}: unknown backend {name!r}; expected 'auto' or one of {sorted(_SPECS)}")
    s = _SPECS[name]
    missing = s.missing()
    if missing:
        hint = f" (pip install 'logscan[{s.extra}]')" if s.extra else ""
        raise RuntimeError(f"{caller}: backend {name!r} needs {', '.join(missing)}, which is not installed{hint}")
    if not s.module_present():
        raise RuntimeError(f"{caller}: backend {name!r} is registered but its module {s.module} is not part of "
                           f"this copy of logscan")
    if s.probe is not None and not s.probe():
        raise RuntimeError(f"{caller}: backend {name!r} is installed but cannot run here "
                           f"(no {s.device.upper()} device found)")
    module = importlib.import_module(s.module)
    _LOADED[name] = module
    return module


# device -> (the registered specs it was chosen among, the "auto" backend's name). Checking
# availability asks the import system for every requirement (about 25 us per call, more than a small
# scan costs), so the choice is made once per device and remade only when the registry changes.
_AUTO: dict[str, tuple[tuple[BackendSpec, ...], str]] = {}


def _auto(device: str, caller: str) -> str:
    specs = tuple(_SPECS.values())
    known = _AUTO.get(device)
    if known is not None and len(known[0]) == len(specs) and all(a is b for a, b in zip(known[0], specs, strict=True)):
        return known[1]
    candidates = available(device)
    if not candidates:
        raise RuntimeError(f"{caller}: no backend available for {device} arrays; registered: {sorted(_SPECS)}")
    _AUTO[device] = (specs, candidates[0])
    return candidates[0]


def resolve(name: str, device: str, *, caller: str = "logscan") -> tuple[str, Backend]:
    """Turn ``backend=`` (possibly "auto") into a loaded backend for ``device``.

    "auto" is the available backend of the highest priority, chosen on the
    first call for ``device`` and kept while the registered backends stay the
    same (a package installed later in the same process is not seen).
    """
    if name == "auto":
        name = _auto(device, caller)
    elif name in _SPECS and _SPECS[name].device != device:
        raise ValueError(f"{caller}: backend {name!r} works on {_SPECS[name].device} arrays, "
                         f"but the arrays given are {device} arrays")
    return name, load(name, caller=caller)
