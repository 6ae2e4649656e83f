"""The data model every part of the project shares: poses, controls, ego state, the scene frame, and
the source protocol (ARCHITECTURE.md, "Conventions").

Coordinates follow CARLA (Unreal): metres, x forward, y right, z up (left-handed), angles in degrees
(pitch, yaw, roll), so poses pass between the procedural world, the stand-in server and CARLA unchanged.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from carla_bridge.core.labels import check_labels
from carla_bridge.core.values import is_int
from carla_bridge.core.weather import check_weather


@dataclass(frozen=True)
class Transform:
    """A pose in CARLA's convention: location in metres, rotation in degrees."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Control:
    """What drives the ego car, as ``carla.VehicleControl`` plus the autopilot switch.

    throttle and brake in [0, 1], steer in [-1, 1] (positive turns right, as in CARLA).
    """

    throttle: float = 0.0
    steer: float = 0.0
    brake: float = 0.0
    hand_brake: bool = False
    reverse: bool = False
    autopilot: bool = False

    def __post_init__(self) -> None:
        for name, low in (("throttle", 0.0), ("steer", -1.0), ("brake", 0.0)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"Control.{name} must be a finite number, got {value!r}")
            if not low <= value <= 1.0:
                raise ValueError(f"Control.{name} must lie in [{low:g}, 1], got {value!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Control:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass(frozen=True)
class EgoState:
    """The ego vehicle at a tick: pose, speed in m/s along its heading, and the control applied."""

    transform: Transform = field(default_factory=Transform)
    speed_mps: float = 0.0
    control: Control = field(default_factory=Control)

    @property
    def speed_kmh(self) -> float:
        return 3.6 * self.speed_mps

    def as_dict(self) -> dict[str, Any]:
        return {
            "transform": self.transform.as_dict(),
            "speed_mps": self.speed_mps,
            "control": self.control.as_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EgoState:
        return cls(
            transform=Transform(**data["transform"]),
            speed_mps=float(data["speed_mps"]),
            control=Control.from_dict(data["control"]),
        )


@dataclass
class SceneFrame:
    """One tick of the ego camera.

    labels: (H, W) uint8 semantic tag ids (carla_bridge.core.labels).
    flow:   (H, W, 2) float32 backward flow in pixels, or None. For pixel (x, y) of this frame,
            (x + flow[y, x, 0], y + flow[y, x, 1]) is where that surface point was in the previous frame.
    depth:  (H, W) float32 metres along the optical axis, or None.
    rgb:    (H, W, 3) uint8, the engine's own image, or None (training target, side-by-side view).
    cut:    True when the camera jumped (spawn, respawn, teleport): consumers drop their history.
    weather: (WEATHER_DIM,) float32 CARLA weather parameters scaled by carla_bridge.core.weather, or
            None when the source does not know it (a renderer then assumes clear noon).
    """

    index: int
    time_s: float
    labels: np.ndarray
    flow: np.ndarray | None = None
    depth: np.ndarray | None = None
    rgb: np.ndarray | None = None
    ego: EgoState = field(default_factory=EgoState)
    cut: bool = False
    weather: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the camera image."""
        return int(self.labels.shape[1]), int(self.labels.shape[0])

    def validate(self) -> SceneFrame:
        """Raise ValueError naming the field when an array has the wrong shape, dtype or values."""
        check_labels(self.labels, "SceneFrame.labels")
        h, w = self.labels.shape
        _check_array(self.flow, "SceneFrame.flow", (h, w, 2), np.float32, finite=True)
        _check_array(self.depth, "SceneFrame.depth", (h, w), np.float32, finite=False)
        _check_array(self.rgb, "SceneFrame.rgb", (h, w, 3), np.uint8, finite=False)
        if self.weather is not None:
            check_weather(self.weather, "SceneFrame.weather")
        return self


def _check_array(
    array: np.ndarray | None, name: str, shape: tuple[int, ...], dtype: type, finite: bool
) -> None:
    if array is None:
        return
    if not isinstance(array, np.ndarray) or array.shape != shape or array.dtype != dtype:
        got = f"{getattr(array, 'shape', type(array).__name__)} {getattr(array, 'dtype', '')}"
        raise ValueError(f"{name} must be {shape} {np.dtype(dtype).name}, got {got.strip()}")
    if finite and not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values")


class SourceLost(RuntimeError):
    """The source can produce no more frames (a server that stopped answering, say). It ends a drive
    with its message; anything recorded so far is finalized."""


@runtime_checkable
class Source(Protocol):
    """Where frames come from: the procedural world, CARLA, the stand-in server, or a replay.

    ``reset`` starts an episode (the returned frame has ``cut=True``); ``step`` applies one control and
    advances one tick. Sources are context managers and ``close`` is safe to call twice. After it,
    ``teardown_failures`` lists what the close could not put back on a shared server (one line each),
    so that the drive exits with an error instead of a warning that scrolls past.
    """

    name: str
    teardown_failures: tuple[str, ...] | list[str]

    def reset(self, seed: int | None = None) -> SceneFrame: ...

    def step(self, control: Control) -> SceneFrame: ...

    def close(self) -> None: ...

    def __enter__(self) -> Source: ...

    def __exit__(self, *exc: object) -> None: ...


class SourceBase:
    """Context-manager plumbing shared by the sources: ``with Source(...) as s:`` always closes."""

    name = "source"
    teardown_failures: tuple[str, ...] = ()  # only a source that changes a server's state has any

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden where there is something to release
        pass


CAMERA_SIDES = (16, 8192)  # the width and height a source renders: what CARLA's cameras take too


def parse_size(value: str | tuple[int, int], flag: str = "--res",
               sides: tuple[int, int] | None = None) -> tuple[int, int]:
    """'256x128' or (256, 128) -> (width, height): whole positive numbers (a bool is no number, and
    64.5 is not rounded to 64), each within ``sides`` when given. ValueError naming ``flag`` otherwise."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value)
        if not match:
            raise ValueError(f"{flag} must look like WIDTHxHEIGHT (e.g. 512x256), got {value!r}")
        width, height = int(match.group(1)), int(match.group(2))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_whole, value)):
        width, height = (int(side) for side in value)
    else:
        raise ValueError(f"{flag} {value!r}: expected (width, height) as two whole numbers, e.g. (256, 128)")
    if sides is None and min(width, height) < 1:
        raise ValueError(f"{flag} sides must be positive, got {width}x{height}")
    if sides is not None and not (sides[0] <= min(width, height) and max(width, height) <= sides[1]):
        raise ValueError(f"{flag} sides must lie in {sides[0]}..{sides[1]} pixels, got {width}x{height}")
    return width, height


def _whole(side: object) -> bool:
    return is_int(side) or (isinstance(side, float) and side.is_integer())
