"""Deterministic synthetic frames for the session tests and the recording benchmark.

Not a world: just structured arrays with the statistics of a driving view (sky, buildings, road with a
moving car and lane marks) so PNG compression and video encoding cost what they cost on real frames.
"""

from __future__ import annotations

import numpy as np

from carla_bridge.core.frames import Control, EgoState, SceneFrame, SourceBase, Transform
from carla_bridge.core.labels import TAG, colorize


def synthetic_frame(index: int, size: tuple[int, int] = (96, 48), seed: int = 0,
                    rgb: bool = True, depth: bool = True) -> SceneFrame:
    """Frame ``index`` of a deterministic sequence: same (index, size, seed) -> identical arrays."""
    width, height = size
    rng = np.random.default_rng([seed, index])
    labels = np.full((height, width), TAG["Sky"], dtype=np.uint8)
    horizon = height // 2
    labels[horizon // 2: horizon] = TAG["Buildings"]
    labels[horizon:] = TAG["Roads"]
    labels[horizon:, : width // 8] = TAG["Sidewalks"]
    mark = (np.arange(width) + 3 * index) % 24 < 8
    labels[horizon + height // 4, mark] = TAG["RoadLines"]
    car_x = (5 * index) % max(1, width - width // 6)
    labels[horizon - height // 10: horizon + height // 8, car_x: car_x + width // 6] = TAG["Car"]
    flow = np.zeros((height, width, 2), dtype=np.float32)
    flow[..., 0] = -0.5 + 0.05 * rng.standard_normal((height, width), dtype=np.float32)
    flow[horizon - height // 10: horizon + height // 8, car_x: car_x + width // 6, 0] = -5.0
    yy = np.arange(height, dtype=np.float32)[:, None]
    dep = np.broadcast_to(np.where(yy > horizon, 2.0 * height / np.maximum(yy - horizon, 1.0), 1000.0),
                          (height, width)).astype(np.float32)
    image = None
    if rgb:
        noise = rng.integers(-12, 13, (height, width, 3))
        image = np.clip(colorize(labels).astype(np.int16) + noise, 0, 255).astype(np.uint8)
    ego = EgoState(Transform(x=0.5 * index, y=2.0, z=0.0, yaw=0.1 * index), speed_mps=10.0,
                   control=Control(throttle=0.5, steer=float(np.sin(index / 7.0)) * 0.2))
    return SceneFrame(index=index, time_s=0.05 * index, labels=labels, flow=flow,
                      depth=dep if depth else None, rgb=image, ego=ego, cut=index == 0)


class SyntheticSource(SourceBase):
    """A Source over synthetic_frame, for tests and the benchmark when the procedural world is absent."""

    name = "synthetic"

    def __init__(self, size: tuple[int, int] = (96, 48), seed: int = 0, rgb: bool = True) -> None:
        self.size, self.seed, self.rgb = size, seed, rgb
        self._index = 0

    def reset(self, seed: int | None = None) -> SceneFrame:
        self.seed = self.seed if seed is None else seed
        self._index = 0
        return synthetic_frame(0, self.size, self.seed, self.rgb)

    def step(self, control: Control) -> SceneFrame:
        self._index += 1
        return synthetic_frame(self._index, self.size, self.seed, self.rgb)
