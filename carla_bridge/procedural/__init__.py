"""The procedural world: a CPU-rendered street town that produces, per tick, what a CARLA ego camera
produces (semantic labels, depth, exact optical flow, an rgb "engine look"), deterministic per seed.

``python -m carla_bridge.procedural --benchmark`` measures it; ``--strip PATH.png`` draws a few frames.
"""

from carla_bridge.procedural._jit_cache import drop_stale_numba_cache

drop_stale_numba_cache()  # before any numba function of the package is loaded

from carla_bridge.procedural.config import WEATHER_NAMES, WEATHERS, WorldConfig  # noqa: E402
from carla_bridge.procedural.town import Lane, Road, Town  # noqa: E402
from carla_bridge.procedural.world import GBuffer, ProceduralWorld  # noqa: E402

__all__ = ["GBuffer", "Lane", "ProceduralWorld", "Road", "Town", "WEATHER_NAMES", "WEATHERS", "WorldConfig"]
