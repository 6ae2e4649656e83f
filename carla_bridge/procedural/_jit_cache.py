"""Keep numba's on-disk cache (cache=True) honest across files.

numba keys a cached function on its own source file only: when a kernel inlines a function or reads a
constant from another module (kernel.py uses materials.py; vehicles.py and ground.py read kernel.py's
and materials.py's constants), editing that other file leaves a stale compiled kernel. We hash all of
this package's sources and drop the package's cache files when the hash changes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def drop_stale_numba_cache() -> None:
    cache = _HERE / "__pycache__"
    digest = hashlib.sha256()
    for path in sorted(_HERE.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    stamp = cache / "numba_sources.sha256"
    try:
        if stamp.exists() and stamp.read_text() == digest.hexdigest():
            return
        for pattern in ("*.nbi", "*.nbc"):
            for old in cache.glob(pattern):
                old.unlink(missing_ok=True)
        cache.mkdir(exist_ok=True)
        stamp.write_text(digest.hexdigest())
    except OSError:  # read-only install: numba falls back to its own cache locations
        pass
