"""The procedural world: a CPU-rendered street town that produces, per tick, what a CARLA ego camera
produces (semantic labels, depth, exact optical flow, an rgb "engine look"), deterministic per seed.

``python -m carla_bridge.procedural --benchmark`` measures it; ``--strip PATH.png`` draws a few frames.
"""

from carla_bridge.procedural.config import WEATHER_NAMES, WEATHERS, WorldConfig
from carla_bridge.procedural.town import Lane, Road, Town
from carla_bridge.procedural.world import GBuffer, ProceduralWorld

__all__ = ["GBuffer", "Lane", "ProceduralWorld", "Road", "Town", "WEATHER_NAMES", "WEATHERS", "WorldConfig"]
