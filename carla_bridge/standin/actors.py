"""The stand-in's actors: the blueprint library they are spawned from, and the registry of ids,
parents, sensor streams and attachment poses.

Blueprints on the wire (rpc::ActorDefinition): ``[uid, id, tags, attributes]`` with each attribute
``[id, type, value, recommended_values, is_modifiable, restrict_to_recommended]``. On the wire the type
is the C++ enum rpc::ActorAttributeType, which starts at Bool = 1 (the Python enum
carla.ActorAttributeType starts at 0: the client rejects ``number_of_wheels: invalid bool`` otherwise).

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

# ----------------------------------------------------------------------------- blueprints
BOOL, INT, FLOAT, STRING, RGB = 1, 2, 3, 4, 5

CAMERAS = (
    "sensor.camera.semantic_segmentation",
    "sensor.camera.optical_flow",
    "sensor.camera.depth",
    "sensor.camera.rgb",
)

# (id, bounding-box half extents in metres) of real CARLA cars, so sizes look familiar to the TM.
VEHICLES = (
    ("vehicle.tesla.model3", (2.40, 1.08, 0.75)),
    ("vehicle.audi.a2", (1.85, 0.90, 0.78)),
    ("vehicle.lincoln.mkz_2020", (2.45, 1.06, 0.75)),
    ("vehicle.mercedes.coupe_2020", (2.34, 1.01, 0.71)),
)


@dataclass(frozen=True)
class Blueprint:
    uid: int
    id: str
    attributes: tuple[list, ...]

    @property
    def tags(self) -> str:
        return ",".join(self.id.split("."))

    def to_rpc(self) -> list:
        return [self.uid, self.id, self.tags, [list(a) for a in self.attributes]]


def _attribute(name: str, kind: int, value: str, recommended: tuple[str, ...] = (), modifiable=True) -> list:
    return [name, kind, value, list(recommended), modifiable, False]


def _camera_attributes(role: str = "front") -> tuple[list, ...]:
    return (
        _attribute("image_size_x", INT, "800"),
        _attribute("image_size_y", INT, "600"),
        _attribute("fov", FLOAT, "90"),
        _attribute("sensor_tick", FLOAT, "0.0"),
        _attribute("role_name", STRING, role),
        _attribute("gamma", FLOAT, "2.2"),
        _attribute("lens_circle_multiplier", FLOAT, "0.0"),
        _attribute("lens_circle_falloff", FLOAT, "5.0"),
        _attribute("chromatic_aberration_intensity", FLOAT, "0.0"),
        _attribute("chromatic_aberration_offset", FLOAT, "0.0"),
    )


def _vehicle_attributes() -> tuple[list, ...]:
    return (
        _attribute("role_name", STRING, "autopilot", ("autopilot", "scenario", "ego_vehicle", "hero")),
        _attribute("color", RGB, "17,37,103", ("17,37,103", "255,255,255", "0,0,0", "180,0,0")),
        _attribute("number_of_wheels", INT, "4", modifiable=False),
        _attribute("base_type", STRING, "car", modifiable=False),
        _attribute("generation", INT, "2", modifiable=False),
        _attribute("sticky_control", BOOL, "true", ("true", "false")),
        _attribute("terramechanics", BOOL, "false", ("true", "false")),
    )


# Cameras manual_control.py lists whose images the procedural renderer cannot make: they spawn and
# stay silent (an instance, DVS or normals image needs what the world does not model).
SILENT_CAMERAS = ("sensor.camera.instance_segmentation", "sensor.camera.dvs", "sensor.camera.normals")

# Other sensors with their attributes and defaults as CARLA 0.9.16 lists them (docs: ref_sensors.md).
SENSORS = {
    "sensor.lidar.ray_cast": (("channels", INT, "32"), ("range", FLOAT, "10.0"), ("points_per_second", INT, "56000"),
                              ("rotation_frequency", FLOAT, "10.0"), ("upper_fov", FLOAT, "10.0"),
                              ("lower_fov", FLOAT, "-30.0"), ("horizontal_fov", FLOAT, "360.0"),
                              ("atmosphere_attenuation_rate", FLOAT, "0.004"), ("dropoff_general_rate", FLOAT, "0.45"),
                              ("dropoff_intensity_limit", FLOAT, "0.8"), ("dropoff_zero_intensity", FLOAT, "0.4"),
                              ("noise_stddev", FLOAT, "0.0")),
    "sensor.lidar.ray_cast_semantic": (("channels", INT, "32"), ("range", FLOAT, "10.0"),
                                       ("points_per_second", INT, "56000"), ("rotation_frequency", FLOAT, "10.0"),
                                       ("upper_fov", FLOAT, "10.0"), ("lower_fov", FLOAT, "-30.0"),
                                       ("horizontal_fov", FLOAT, "360.0")),
    "sensor.other.radar": (("horizontal_fov", FLOAT, "30.0"), ("vertical_fov", FLOAT, "30.0"), ("range", FLOAT, "100.0"),
                           ("points_per_second", INT, "1500")),
    "sensor.other.gnss": tuple((f"noise_{axis}_{kind}", FLOAT, "0.0") for axis in ("alt", "lat", "lon")
                               for kind in ("bias", "stddev")) + (("noise_seed", INT, "0"),),
    "sensor.other.imu": tuple((f"noise_{what}_{axis}", FLOAT, "0.0") for what in ("accel_stddev", "gyro_bias", "gyro_stddev")
                              for axis in "xyz") + (("noise_seed", INT, "0"),),
    "sensor.other.collision": (),
    "sensor.other.lane_invasion": (),
    "sensor.other.obstacle": (("distance", FLOAT, "5"), ("hit_radius", FLOAT, "0.5"), ("only_dynamics", BOOL, "false"),
                              ("debug_linetrace", BOOL, "false")),
}
# Pedestrians: generate_traffic.py filters "walker.pedestrian.*" of generation 2 and reads the speed
# attribute's recommended values [default, walking, running] in m/s.
WALKERS = tuple(f"walker.pedestrian.{n:04d}" for n in range(1, 9))
WALKER_CONTROLLER = "controller.ai.walker"


def _sensor_attributes(type_id: str) -> tuple[list, ...]:
    common = (_attribute("sensor_tick", FLOAT, "0.0"), _attribute("role_name", STRING, "front"))
    return tuple(_attribute(*a) for a in SENSORS[type_id]) + common


def _walker_attributes(number: int) -> tuple[list, ...]:
    return (
        _attribute("role_name", STRING, "pedestrian"),
        _attribute("is_invincible", BOOL, "true", ("true", "false")),
        _attribute("speed", FLOAT, "1.4", ("1.4", "1.4", "2.8")),
        _attribute("age", STRING, "child" if number % 4 == 0 else "adult", modifiable=False),
        _attribute("gender", STRING, "female" if number % 2 else "male", modifiable=False),
        _attribute("generation", INT, "2", modifiable=False),
        _attribute("can_use_wheelchair", BOOL, "false", modifiable=False),
    )


def blueprint_library() -> list[Blueprint]:
    library = [Blueprint(1 + i, name, _vehicle_attributes()) for i, (name, _) in enumerate(VEHICLES)]
    library += [Blueprint(100 + i, name, _camera_attributes()) for i, name in enumerate(CAMERAS)]
    library += [Blueprint(150 + i, name, _camera_attributes()) for i, name in enumerate(SILENT_CAMERAS)]
    library += [Blueprint(200 + i, name, _sensor_attributes(name)) for i, name in enumerate(SENSORS)]
    library += [Blueprint(300 + i, name, _walker_attributes(i + 1)) for i, name in enumerate(WALKERS)]
    library.append(Blueprint(400, WALKER_CONTROLLER, (_attribute("role_name", STRING, ""),)))
    return library


def vehicle_extent(type_id: str) -> tuple[float, float, float]:
    """Half extents of a vehicle blueprint (the first car's for an unknown id)."""
    return dict(VEHICLES).get(type_id, VEHICLES[0][1])


def description_attributes(description: list) -> dict[str, str]:
    """Attribute values of a wire ActorDescription ``[uid, id, [[name, type, value], ...]]``."""
    return {str(a[0]): str(a[2]) for a in description[2]}


# ----------------------------------------------------------------------------- poses and registry


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
    camera: tuple[int, int, float] | None = None  # cameras: (width, height, fov), checked at spawn
    prev_pose: Transform | None = None  # a camera's pose at the previous tick (for flow)
    sensor_tick_s: float = 0.0  # the blueprint's sensor_tick: capture at most this often (0: every tick)
    captured_s: float | None = None  # the simulation time of the camera's last frame

    @property
    def is_vehicle(self) -> bool:
        return self.type_id.startswith("vehicle.")

    @property
    def is_walker(self) -> bool:
        return self.type_id.startswith("walker.")


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
