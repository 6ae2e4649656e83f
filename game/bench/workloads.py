"""The measuring tools' stand-ins for a world, a renderer and a frame's other work, in one place.

Not a world: synthetic_frame gives structured arrays with the statistics of a driving view (sky,
buildings, road with a moving car and lane marks), so PNG compression and video encoding cost what they
cost on real frames, and the renderer sees labels and flow of a real frame's kind. Deterministic: the
same (index, size, seed) gives identical arrays, so two runs of a benchmark see the same frames.
"""

from __future__ import annotations

import time

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


def frame_pool(size: tuple[int, int], count: int = 4, seed: int = 0) -> list[SceneFrame]:
    """A few distinct frames (labels and flow only), cycled by the timing loops so that every render
    uploads fresh host data."""
    return [synthetic_frame(i + 1, size, seed, rgb=False, depth=False) for i in range(count)]


class SyntheticSource(SourceBase):
    """A Source over synthetic_frame: the recording benchmark's `--source synthetic`."""

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


class StandInRenderer:
    """A cheap temporal renderer in the Renderer's shape (render(frame) -> (H, W, 3) uint8, reset(),
    last_timings): colorize the labels and blend with the previous output. A few ms, the worst case for
    the relative cost of whatever is measured beside it (recording, profiling)."""

    model_name = backend_name = "stand-in"
    device_name = "cpu"

    def __init__(self) -> None:
        self.previous: np.ndarray | None = None
        self.last_timings: dict[str, tuple[int, int]] = {}

    def reset(self) -> None:
        self.previous = None

    def render(self, frame: SceneFrame) -> np.ndarray:
        t0 = time.perf_counter_ns()
        image = colorize(frame.labels).astype(np.float32)
        t1 = time.perf_counter_ns()
        if self.previous is not None and not frame.cut:
            image = 0.7 * image + 0.3 * self.previous
        t2 = time.perf_counter_ns()
        out = self.previous = image.astype(np.uint8)
        self.last_timings = {"preprocess": (t0, t1), "inference": (t1, t2), "download": (t2, time.perf_counter_ns())}
        return out


class FixedWorkload:
    """A fixed amount of numpy work per frame (matrix products), calibrated once to about ``ms``: the
    rest of a frame's work when the source is synthetic."""

    def __init__(self, ms: float) -> None:
        self.a = np.random.default_rng(0).random((192, 192), dtype=np.float32)
        start = time.perf_counter()
        for _ in range(20):
            self.a @ self.a
        per_op = (time.perf_counter() - start) / 20
        self.ops = max(0, round(ms / 1000 / per_op)) if ms > 0 else 0

    def __call__(self) -> None:
        for _ in range(self.ops):
            self.a @ self.a
