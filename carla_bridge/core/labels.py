"""The label space: CARLA 0.9.14+ semantic tags 0..28 with the CityScapes palette.

One table serves every source (the CARLA semantic camera writes these ids in the red channel of its
BGRA image; the procedural world emits the same ids) and every view (colorize). The palette is the
one CARLA's own ``CityScapesPalette`` converter uses (LibCarla/source/carla/image/CityScapesPalette.h).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Label(NamedTuple):
    id: int
    name: str
    color: tuple[int, int, int]  # RGB


LABELS: tuple[Label, ...] = (
    Label(0, "Unlabeled", (0, 0, 0)),
    Label(1, "Roads", (128, 64, 128)),
    Label(2, "Sidewalks", (244, 35, 232)),
    Label(3, "Buildings", (70, 70, 70)),
    Label(4, "Walls", (102, 102, 156)),
    Label(5, "Fences", (190, 153, 153)),
    Label(6, "Poles", (153, 153, 153)),
    Label(7, "TrafficLight", (250, 170, 30)),
    Label(8, "TrafficSigns", (220, 220, 0)),
    Label(9, "Vegetation", (107, 142, 35)),
    Label(10, "Terrain", (152, 251, 152)),
    Label(11, "Sky", (70, 130, 180)),
    Label(12, "Pedestrians", (220, 20, 60)),
    Label(13, "Rider", (255, 0, 0)),
    Label(14, "Car", (0, 0, 142)),
    Label(15, "Truck", (0, 0, 70)),
    Label(16, "Bus", (0, 60, 100)),
    Label(17, "Train", (0, 80, 100)),
    Label(18, "Motorcycle", (0, 0, 230)),
    Label(19, "Bicycle", (119, 11, 32)),
    Label(20, "Static", (110, 190, 160)),
    Label(21, "Dynamic", (170, 120, 50)),
    Label(22, "Other", (55, 90, 80)),
    Label(23, "Water", (45, 60, 150)),
    Label(24, "RoadLines", (157, 234, 50)),
    Label(25, "Ground", (81, 0, 81)),
    Label(26, "Bridge", (150, 100, 100)),
    Label(27, "RailTrack", (230, 150, 140)),
    Label(28, "GuardRail", (180, 165, 180)),
)

NUM_LABELS = len(LABELS)
TAG = {label.name: label.id for label in LABELS}
"""Name -> id, e.g. ``TAG["Roads"] == 1``."""

PALETTE = np.array([label.color for label in LABELS], dtype=np.uint8)
"""(NUM_LABELS, 3) uint8 RGB colours indexed by tag id."""

# Colour lookup padded to 256 entries so that colorize never indexes out of range; ids that are not
# in the table show as magenta, which no CityScapes class uses, so bad labels stand out on screen.
_LOOKUP = np.full((256, 3), (255, 0, 255), dtype=np.uint8)
_LOOKUP[:NUM_LABELS] = PALETTE


def colorize(labels: np.ndarray) -> np.ndarray:
    """Map (H, W) uint8 tag ids to an (H, W, 3) uint8 RGB image in the CityScapes palette."""
    labels = np.asarray(labels)
    if labels.dtype != np.uint8:
        raise ValueError(f"labels must be uint8 tag ids, got dtype {labels.dtype}")
    return _LOOKUP[labels]


def check_labels(labels: np.ndarray, name: str = "labels") -> None:
    """Raise ValueError naming ``name`` when ``labels`` is not an (H, W) uint8 map of known tag ids."""
    if not isinstance(labels, np.ndarray) or labels.ndim != 2 or labels.dtype != np.uint8:
        got = f"{type(labels).__name__} {getattr(labels, 'shape', '')} {getattr(labels, 'dtype', '')}"
        raise ValueError(f"{name} must be an (H, W) uint8 array of tag ids, got {got.strip()}")
    if labels.size and int(labels.max()) >= NUM_LABELS:
        raise ValueError(
            f"{name} holds tag id {int(labels.max())}, outside 0..{NUM_LABELS - 1} "
            "(CARLA 0.9.14+ semantic tags); map other label sets through a table first"
        )
