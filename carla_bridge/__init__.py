"""Where frames come from and where sessions go: the data model, the procedural world, the CARLA
client source, the CARLA wire-protocol stand-in server, and recorded sessions."""

from carla_bridge.core.frames import Control, EgoState, SceneFrame, Source, SourceBase, SourceLost, Transform
from carla_bridge.core.labels import LABELS, NUM_LABELS, PALETTE, TAG, colorize

__all__ = [
    "Control", "EgoState", "SceneFrame", "Source", "SourceBase", "SourceLost", "Transform",
    "LABELS", "NUM_LABELS", "PALETTE", "TAG", "colorize",
]
