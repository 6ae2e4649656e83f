"""The stand-in's actor registry: ids, parents, sensor streams, and attachment poses.

CARLA actor ids are server-wide; vehicles also have an id in the procedural world (``world_id``), and a
camera's pose is its parent's pose composed with its relative transform, in CARLA's rotation
convention (LibCarla geom::Rotation::RotateVector: yaw about z, pitch about y, roll about x, degrees).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from carla_bridge.core.frames import Transform

SPECTATOR_ID = 1


def rotation_matrix(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """3x3 matrix of CARLA's rotation (columns: the rotated x, y, z axes in world coordinates)."""
    p, y, r = (math.radians(v) for v in (pitch, yaw, roll))
    cp, sp, cy, sy, cr, sr = math.cos(p), math.sin(p), math.cos(y), math.sin(y), math.cos(r), math.sin(r)
    return np.array([
        [cp * cy, cy * sp * sr - sy * cr, -cy * sp * cr - sy * sr],
        [cp * sy, sy * sp * sr + cy * cr, -sy * sp * cr + cy * sr],
        [sp, -cp * sr, cp * cr],
    ])


def compose(parent: Transform, local: Transform) -> Transform:
    """World pose of ``local`` expressed relative to ``parent`` (how CARLA places attached sensors)."""
    rp = rotation_matrix(parent.pitch, parent.yaw, parent.roll)
    position = rp @ np.array([local.x, local.y, local.z]) + np.array([parent.x, parent.y, parent.z])
    m = rp @ rotation_matrix(local.pitch, local.yaw, local.roll)
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, m[2, 0]))))
    yaw = math.degrees(math.atan2(m[1, 0], m[0, 0]))
    roll = math.degrees(math.atan2(-m[2, 1], m[2, 2]))
    return Transform(*(float(v) for v in position), pitch, yaw, roll)


@dataclass
class ActorRecord:
    """One actor as the server tracks it."""

    actor_id: int
    type_id: str
    description: list  # the wire ActorDescription the client sent, echoed back in rpc Actor
    attributes: dict[str, str]
    parent_id: int = 0
    transform: Transform = field(default_factory=Transform)  # relative to the parent for attached actors
    world_id: int | None = None  # id in the procedural world (vehicles)
    stream_id: int | None = None  # sensors
    prev_pose: Transform | None = None  # a camera's pose at the previous tick (for flow)

    @property
    def is_vehicle(self) -> bool:
        return self.type_id.startswith("vehicle.")

    @property
    def is_sensor(self) -> bool:
        return self.type_id.startswith("sensor.")


class ActorRegistry:
    """Thread-safe id -> ActorRecord map with id and stream-id allocation."""

    def __init__(self) -> None:
        self._actors: dict[int, ActorRecord] = {}
        self._next_id = 100
        self._next_stream = 2  # stream 1 is the episode state (WorldObserver)
        self._lock = threading.RLock()
        self.add(ActorRecord(SPECTATOR_ID, "spectator", [0, "spectator", []], {},
                             transform=Transform(z=50.0, pitch=-90.0)))

    def new_ids(self, sensor: bool) -> tuple[int, int | None]:
        with self._lock:
            actor_id, self._next_id = self._next_id, self._next_id + 1
            stream_id = None
            if sensor:
                stream_id, self._next_stream = self._next_stream, self._next_stream + 1
            return actor_id, stream_id

    def add(self, record: ActorRecord) -> ActorRecord:
        with self._lock:
            self._actors[record.actor_id] = record
        return record

    def remove(self, actor_id: int) -> ActorRecord | None:
        with self._lock:
            return self._actors.pop(actor_id, None)

    def get(self, actor_id: int) -> ActorRecord | None:
        with self._lock:
            return self._actors.get(actor_id)

    def all(self) -> list[ActorRecord]:
        with self._lock:
            return list(self._actors.values())

    def children(self, actor_id: int) -> list[ActorRecord]:
        with self._lock:
            return [a for a in self._actors.values() if a.parent_id == actor_id]

    def by_world_id(self, world_id: int) -> ActorRecord | None:
        with self._lock:
            return next((a for a in self._actors.values() if a.world_id == world_id), None)
