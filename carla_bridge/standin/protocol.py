"""CARLA 0.9.16 wire encodings: RPC values and sensor payloads, as LibCarla reads and writes them.

RPC values (msgpack, LibCarla/source/carla/rpc):
- ``Response<T>``: ok = ``[[1, value]]``, error = ``[[0, ["message"]]]`` (the client raises RuntimeError
  with the message); ``Response<void>`` ok = ``[[False]]``; ``boost::optional`` = ``[False]`` / ``[True, v]``.
- Transform ``[[x, y, z], [pitch, yaw, roll]]``; VehicleControl ``[throttle, steer, brake, hand_brake,
  reverse, manual_gear_shift, gear]``; Actor ``[id, parent, description, bounding_box, tags, token]``.

Sensor payloads (LibCarla/source/carla/sensor/s11n): a 48-byte header ``<QQd6f`` (sensor type index,
frame, timestamp, sensor world transform), then for images ``<IIf`` width, height, fov and the pixels;
for the episode state (WorldObserver) ``<Qdf3ii`` and one 119-byte ActorDynamicState per actor.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from carla_bridge.core.frames import Control, Transform

# Index of each serializer in the 0.9.16 wheel's CompositeSerializer list (checked by experiment).
SENSOR_TYPE = {
    "sensor.camera.depth": 1,
    "sensor.camera.optical_flow": 8,
    "sensor.camera.rgb": 13,
    "sensor.camera.semantic_segmentation": 14,
}
WORLD_OBSERVER = 17
ACTOR_STATE_ACTIVE = 1

_HEADER = struct.Struct("<QQd6f")
_IMAGE = struct.Struct("<IIf")
_EPISODE = struct.Struct("<Qdf3ii")
_ACTOR = struct.Struct("<IB6f3f3f3f")
_VEHICLE = struct.Struct("<3f3?i")
_VEHICLE_TAIL = struct.Struct("<fBBIB")  # speed_limit km/h, traffic light state, has light, light id, failure
_UNION_BYTES = 54
ACTOR_RECORD_BYTES = _ACTOR.size + _UNION_BYTES  # 119


# ----------------------------------------------------------------------------- RPC values
def ok(value: Any) -> list:
    return [[1, value]]


def ok_void() -> list:
    return [[False]]


def error(message: str) -> list:
    return [[0, [message]]]


def optional(value: Any) -> list:
    return [False] if value is None else [True, value]


def transform_to_rpc(t: Transform) -> list:
    return [[t.x, t.y, t.z], [t.pitch, t.yaw, t.roll]]


def transform_from_rpc(value: list) -> Transform:
    (x, y, z), (pitch, yaw, roll) = value
    return Transform(float(x), float(y), float(z), float(pitch), float(yaw), float(roll))


def control_from_rpc(value: list, autopilot: bool = False) -> Control:
    """carla.VehicleControl on the wire -> our Control (values clamped as CARLA clamps them)."""
    throttle, steer, brake, hand_brake, reverse = (list(value) + [0.0, 0.0, 0.0, False, False])[:5]

    def clamp(v: float, low: float) -> float:
        return min(1.0, max(low, float(v)))

    return Control(clamp(throttle, 0.0), clamp(steer, -1.0), clamp(brake, 0.0), bool(hand_brake),
                   bool(reverse), autopilot)


def control_to_rpc(c: Control) -> list:
    return [c.throttle, c.steer, c.brake, c.hand_brake, c.reverse, False, 1 if not c.reverse else -1]


def bounding_box_to_rpc(extent: tuple[float, float, float], center_z: float, actor_id: int) -> list:
    return [[0.0, 0.0, center_z], list(extent), [0.0, 0.0, 0.0], actor_id]


# ----------------------------------------------------------------------------- sensor payloads
def sensor_header(sensor_type: int, frame: int, timestamp: float, pose: Transform) -> bytes:
    return _HEADER.pack(sensor_type, frame, timestamp, pose.x, pose.y, pose.z, pose.pitch, pose.yaw, pose.roll)


def image_payload(sensor_type: int, frame: int, timestamp: float, pose: Transform, width: int,
                  height: int, fov: float, pixels: bytes) -> bytes:
    """A camera frame: header, ``<IIf`` width, height, fov, then the pixel bytes."""
    return sensor_header(sensor_type, frame, timestamp, pose) + _IMAGE.pack(width, height, fov) + pixels


@dataclass(frozen=True)
class ImageHeader:
    """What precedes a camera frame's pixels (image_payload's fields)."""

    sensor_type: int
    frame: int
    timestamp: float
    pose: Transform
    width: int
    height: int
    fov: float


IMAGE_HEADER_BYTES = _HEADER.size + _IMAGE.size


def read_image_header(payload: bytes) -> ImageHeader:
    """The fields image_payload wrote; the pixels follow at IMAGE_HEADER_BYTES."""
    if len(payload) < IMAGE_HEADER_BYTES:
        raise ValueError(f"a camera frame holds at least {IMAGE_HEADER_BYTES} bytes, got {len(payload)}")
    sensor_type, frame, timestamp, *pose = _HEADER.unpack_from(payload)
    width, height, fov = _IMAGE.unpack_from(payload, _HEADER.size)
    return ImageHeader(sensor_type, frame, timestamp, Transform(*pose), width, height, fov)


@dataclass(frozen=True)
class ActorDynamics:
    """What the episode state says about one actor each tick (the client reads transforms from it)."""

    actor_id: int
    transform: Transform
    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    angular_velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    acceleration: tuple[float, float, float] = (0.0, 0.0, 0.0)
    control: Control | None = None  # vehicles only
    speed_limit_kmh: float = 30.0


def _actor_record(a: ActorDynamics) -> bytes:
    t = a.transform
    record = _ACTOR.pack(a.actor_id, ACTOR_STATE_ACTIVE, t.x, t.y, t.z, t.pitch, t.yaw, t.roll,
                         *a.velocity, *a.angular_velocity, *a.acceleration)
    union = b""
    if a.control is not None:
        c = a.control
        gear = -1 if c.reverse else 1
        union = _VEHICLE.pack(c.throttle, c.steer, c.brake, c.hand_brake, c.reverse, False, gear)
        union += _VEHICLE_TAIL.pack(a.speed_limit_kmh, 0, False, 0, 0)
    return record + union.ljust(_UNION_BYTES, b"\0")


def episode_state_payload(frame: int, timestamp: float, episode_id: int, platform_time: float,
                          delta_s: float, actors: Iterable[ActorDynamics]) -> bytes:
    """The WorldObserver payload the client's ``world.tick()`` and ``get_transform()`` wait on."""
    head = sensor_header(WORLD_OBSERVER, frame, timestamp, Transform())
    body = _EPISODE.pack(episode_id, platform_time, delta_s, 0, 0, 0, 0)
    return head + body + b"".join(_actor_record(a) for a in actors)
