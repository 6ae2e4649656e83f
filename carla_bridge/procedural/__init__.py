"""The procedural world: a CPU-rendered street town that produces, per tick, what a CARLA ego camera
produces (semantic labels, depth, exact optical flow, an rgb "engine look"), deterministic per seed.

``python -m carla_bridge.procedural --benchmark`` measures it; ``--strip PATH.png`` draws a few frames.
"""

import hashlib
from pathlib import Path


def drop_stale_numba_cache() -> None:
    """Keep numba's on-disk cache (cache=True) honest across files.

    numba keys a cached function on its own source file only: when a kernel inlines a function or reads
    a constant from another module (kernel.py uses materials.py; vehicles.py and ground.py read
    kernel.py's and materials.py's constants), editing that other file leaves a stale compiled kernel.
    So all of this package's sources are hashed, and the package's cache files dropped when the hash
    changes.
    """
    here = Path(__file__).resolve().parent
    cache = here / "__pycache__"
    digest = hashlib.sha256()
    for path in sorted(here.glob("*.py")):
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


drop_stale_numba_cache()  # before any numba function of the package is loaded

from carla_bridge.procedural.config import WEATHER_NAMES, WEATHERS, WorldConfig  # noqa: E402
from carla_bridge.procedural.town import Lane, Road, Town  # noqa: E402
from carla_bridge.procedural.world import GBuffer, ProceduralWorld  # noqa: E402

__all__ = ["GBuffer", "Lane", "ProceduralWorld", "Road", "Town", "WEATHER_NAMES", "WEATHERS", "WorldConfig"]
