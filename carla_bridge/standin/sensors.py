"""The stand-in's sensors that are not cameras: their measurements, in CARLA 0.9.16's byte layout, made
from the procedural world's state.

Layouts (LibCarla/source/carla/sensor/s11n, after the 48-byte sensor header protocol.sensor_header):
- LidarSerializer: a uint32 header ``[horizontal angle (float bits), channel count, points of each
  channel...]``, then float32 ``x, y, z, intensity`` per point, in the sensor's frame (data/LidarData.h).
- RadarSerializer: float32 ``velocity, azimuth, altitude, depth`` per detection (data/RadarData.h).
- GnssSerializer: msgpack ``[latitude, longitude, altitude]`` (geom::GeoLocation).
- IMUSerializer: msgpack ``[accelerometer xyz, gyroscope xyz, compass]`` (m/s^2, rad/s, rad from north).

The procedural world is flat ground with cars and pedestrians: a lidar sees the ground ring its lasers
hit within range (a sensor at or under the ground sees nothing), a radar the cars inside its cone. No
sensor makes up an event the world cannot have (a collision sensor stays silent).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import msgpack
import numpy as np

from carla_bridge.core.frames import Transform
from carla_bridge.standin.actors import rotation_matrix
from carla_bridge.standin.protocol import sensor_header

# Index of each serializer in the 0.9.16 wheel's CompositeSerializer (LibCarla SensorRegistry.h).
MEASURED_TYPE = {
    "sensor.other.gnss": 4,
    "sensor.other.imu": 5,
    "sensor.other.radar": 9,
    "sensor.lidar.ray_cast": 11,
}
# Every other sensor has a stream and never sends on it: a collision or obstacle sensor in a world
# without contacts or an obstacle trace, and the semantic lidar and cameras the renderer cannot make.
# Handled by libcarla itself (client/LaneInvasionSensor.cpp): the server spawns it without a stream.
CLIENT_SIDE = ("sensor.other.lane_invasion",)
GRAVITY_MPS2 = 9.81
EARTH_RADIUS_EQUATOR_M = 6378137.0  # LibCarla geom/GeoLocation.cpp
# The geoReference of the stand-in's OpenDRIVE (procedural/opendrive.py): lat_0 = lon_0 = 0.
GEO_ORIGIN = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Motion:
    """What a sensor's measurement needs of the actor it rides on (world frame)."""

    pose: Transform
    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    acceleration: tuple[float, float, float] = (0.0, 0.0, 0.0)
    yaw_rate_rad_s: float = 0.0


def _number(attributes: dict[str, str], name: str, default: float) -> float:
    return float(attributes.get(name, default))


def lidar_points(attributes: dict[str, str], pose: Transform, dt: float, start_angle_deg: float) -> tuple[float, list[int], np.ndarray]:
    """(end angle, points per channel, Nx4 float32 points) of one lidar sweep over ``dt``: each laser's
    ground hits in its arc, in the sensor's frame (x forward, y right as Unreal's, z up)."""
    channels = int(_number(attributes, "channels", 32))
    max_range = _number(attributes, "range", 10.0)
    per_laser = int(_number(attributes, "points_per_second", 56000) * dt / max(channels, 1))
    sweep = min(360.0, 360.0 * _number(attributes, "rotation_frequency", 10.0) * dt)
    upper, lower = _number(attributes, "upper_fov", 10.0), _number(attributes, "lower_fov", -30.0)
    attenuation = _number(attributes, "atmosphere_attenuation_rate", 0.004)
    height = pose.z
    elevations = np.radians(np.linspace(upper, lower, channels)) if channels > 1 else np.radians([upper])
    azimuths = np.radians(start_angle_deg + np.arange(per_laser) * sweep / max(per_laser, 1))
    counts, rings = [], []
    for elevation in elevations:
        slant = height / math.sin(-elevation) if elevation < 0.0 and height > 0.0 else math.inf
        if slant > max_range:
            counts.append(0)
            continue
        ground = slant * math.cos(elevation)
        ring = np.empty((len(azimuths), 4), np.float32)
        ring[:, 0], ring[:, 1] = ground * np.cos(azimuths), ground * np.sin(azimuths)
        ring[:, 2], ring[:, 3] = -height, math.exp(-attenuation * slant)
        counts.append(len(ring))
        rings.append(ring)
    points = np.concatenate(rings) if rings else np.empty((0, 4), np.float32)
    return (start_angle_deg + sweep) % 360.0, counts, points


def lidar_body(angle_deg: float, counts: list[int], points: np.ndarray) -> bytes:
    angle_bits = struct.unpack("<I", struct.pack("<f", angle_deg))[0]
    return struct.pack(f"<{2 + len(counts)}I", angle_bits, len(counts), *counts) + points.astype("<f4").tobytes()


def radar_detections(attributes: dict[str, str], sensor: Motion, targets: list[Motion]) -> np.ndarray:
    """Nx4 float32 ``velocity, azimuth, altitude, depth`` of the target centres inside the radar's
    cone and range; velocity is the closing speed along the line of sight (negative: approaching)."""
    half_h = math.radians(_number(attributes, "horizontal_fov", 30.0)) / 2.0
    half_v = math.radians(_number(attributes, "vertical_fov", 30.0)) / 2.0
    max_range = _number(attributes, "range", 100.0)
    to_world = rotation_matrix(sensor.pose.pitch, sensor.pose.yaw, sensor.pose.roll)
    origin = np.array([sensor.pose.x, sensor.pose.y, sensor.pose.z])
    rows = []
    for target in targets:
        offset = np.array([target.pose.x, target.pose.y, target.pose.z + 0.7]) - origin
        local = to_world.T @ offset
        depth = float(np.linalg.norm(local))
        if not 0.0 < depth <= max_range:
            continue
        azimuth, altitude = math.atan2(local[1], local[0]), math.asin(local[2] / depth)
        if abs(azimuth) > half_h or abs(altitude) > half_v:
            continue
        relative = np.array(target.velocity) - np.array(sensor.velocity)
        rows.append((float(relative @ offset) / depth, azimuth, altitude, depth))
    return np.array(rows, np.float32).reshape(-1, 4)


def geolocation(pose: Transform) -> tuple[float, float, float]:
    """LibCarla geom::GeoLocation::Transform: the location as metres east (x) and north (-y) of the
    map's geo reference, through the Mercator projection at its latitude."""
    latitude0, longitude0, altitude0 = GEO_ORIGIN
    scale = math.cos(math.radians(latitude0))
    mx = scale * math.radians(longitude0) * EARTH_RADIUS_EQUATOR_M + pose.x
    my = scale * EARTH_RADIUS_EQUATOR_M * math.log(math.tan((90.0 + latitude0) * math.pi / 360.0)) - pose.y
    longitude = mx * 180.0 / (math.pi * EARTH_RADIUS_EQUATOR_M * scale)
    latitude = 360.0 * math.atan(math.exp(my / (EARTH_RADIUS_EQUATOR_M * scale))) / math.pi - 90.0
    return latitude, longitude, altitude0 + pose.z


def imu_reading(motion: Motion) -> list:
    """Accelerometer (the proper acceleration: a sensor at rest reads +g up), gyroscope and compass in
    the sensor's frame; compass as InertialMeasurementUnit.cpp: 0 facing north (-y), pi/2 east (+x)."""
    to_world = rotation_matrix(motion.pose.pitch, motion.pose.yaw, motion.pose.roll)
    accelerometer = to_world.T @ (np.array(motion.acceleration) + np.array([0.0, 0.0, GRAVITY_MPS2]))
    gyroscope = to_world.T @ np.array([0.0, 0.0, motion.yaw_rate_rad_s])
    compass = (math.radians(motion.pose.yaw) + math.pi / 2.0) % (2.0 * math.pi)
    return [[float(v) for v in accelerometer], [float(v) for v in gyroscope], compass]


class SensorStates:
    """Per-sensor state kept across ticks (a lidar's current angle)."""

    def __init__(self) -> None:
        self.lidar_angle: dict[int, float] = {}

    def forget(self, actor_id: int) -> None:
        self.lidar_angle.pop(actor_id, None)

    def payload(self, actor_id: int, type_id: str, attributes: dict[str, str], frame: int, timestamp: float,
                dt: float, sensor: Motion, targets: list[Motion]) -> bytes:
        """One measurement of a MEASURED_TYPE sensor, header included."""
        head = sensor_header(MEASURED_TYPE[type_id], frame, timestamp, sensor.pose)
        if type_id == "sensor.lidar.ray_cast":
            angle, counts, points = lidar_points(attributes, sensor.pose, dt, self.lidar_angle.get(actor_id, 0.0))
            self.lidar_angle[actor_id] = angle
            return head + lidar_body(angle, counts, points)
        if type_id == "sensor.other.radar":
            return head + radar_detections(attributes, sensor, targets).astype("<f4").tobytes()
        if type_id == "sensor.other.gnss":
            return head + msgpack.packb(list(geolocation(sensor.pose)))
        return head + msgpack.packb(imu_reading(sensor))
