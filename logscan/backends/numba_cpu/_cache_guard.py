"""Drop numba's on-disk cache of this package's kernels when any of its sources changed.

Why
---
numba keys a cached kernel (``cache=True``) on the file that defines it, not
on the helper modules it inlines (``_steps``, ``_vmath``, ``_lanes``, ...):
after an edit or an upgrade that changed only a helper, the old machine code
would still be loaded. :func:`refresh` keeps a digest of every ``*.py`` of
the package next to the cache (``__pycache__/logscan-sources.sha256``) and
deletes the cached kernels (``*.nbi``, ``*.nbc``) when it no longer matches,
so they are compiled again from the current sources.

Only the in-tree cache is handled. A cache elsewhere (``NUMBA_CACHE_DIR``, or
numba's per-user directory for a read-only install) is left alone; a
directory that cannot be written is left alone too (numba then cannot write
its cache there either).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

STAMP = "logscan-sources.sha256"


def sources_digest(package: Path) -> str:
    """SHA-256 of the package's ``*.py`` files, names and contents, in name order."""
    digest = hashlib.sha256()
    for path in sorted(package.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def refresh(package: Path) -> bool:
    """Delete ``package/__pycache__/*.nb[ic]`` if the sources changed since the last call; True if it did."""
    cache = package / "__pycache__"
    stamp = cache / STAMP
    digest = sources_digest(package)
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass  # no stamp yet
    try:
        cache.mkdir(exist_ok=True)
        for path in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
            path.unlink(missing_ok=True)
        stamp.write_text(digest)
    except OSError:
        return False
    return True
