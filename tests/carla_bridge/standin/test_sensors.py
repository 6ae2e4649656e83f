"""The stand-in's non-camera sensors: their measurements from the world's state (no client), and
PythonAPI/examples/sensor_synchronization.py's calls through the real ``carla`` client."""

from __future__ import annotations

import math
import struct
from queue import Queue

import msgpack
import numpy as np
import pytest

from carla_bridge.core.frames import Transform
from carla_bridge.standin.sensors import (MEASURED_TYPE, Motion, SensorStates, geolocation, imu_reading, lidar_body,
                                          lidar_points, radar_detections)
from support.carla import client, require_carla, standin  # noqa: F401


def test_a_lidar_sees_the_ground_ring_within_its_range_and_nothing_from_the_ground():
    attributes = {"channels": "8", "range": "20", "points_per_second": "8000", "rotation_frequency": "10"}
    angle, counts, points = lidar_points(attributes, Transform(z=2.0), 0.05, 0.0)
    assert angle == pytest.approx(180.0)  # half a turn in 0.05 s at 10 Hz
    assert len(counts) == 8 and sum(counts) == len(points) > 0
    assert np.allclose(points[:, 2], -2.0)
    slant = np.linalg.norm(points[:, :3], axis=1)
    assert slant.max() <= 20.0 + 1e-3 and np.all((points[:, 3] > 0.0) & (points[:, 3] <= 1.0))
    assert sum(lidar_points(attributes, Transform(z=0.0), 0.05, 0.0)[1]) == 0  # on the ground: no hits
    body = lidar_body(angle, counts, points)
    assert struct.unpack_from("<I", body, 4)[0] == 8 and len(body) == 4 * (2 + 8) + 16 * len(points)


def test_a_radar_sees_cars_in_its_cone_with_their_closing_speed():
    sensor = Motion(Transform(z=1.0), velocity=(10.0, 0.0, 0.0))
    ahead = Motion(Transform(x=30.0), velocity=(4.0, 0.0, 0.0))
    behind, aside = Motion(Transform(x=-30.0)), Motion(Transform(y=30.0))
    detections = radar_detections({}, sensor, [ahead, behind, aside])
    assert detections.shape == (1, 4)
    velocity, azimuth, _, depth = detections[0]
    assert velocity == pytest.approx(-6.0, abs=0.1) and abs(azimuth) < 0.01 and depth == pytest.approx(30.0, abs=0.1)


def test_gnss_follows_libcarla_geolocation_east_is_x_and_north_is_minus_y():
    origin_lat, origin_lon, _ = geolocation(Transform())
    lat, lon, alt = geolocation(Transform(x=111.32, y=-111.32, z=3.0))
    assert (origin_lat, origin_lon) == pytest.approx((0.0, 0.0))
    assert lat == pytest.approx(0.001, rel=0.01) and lon == pytest.approx(0.001, rel=0.01) and alt == 3.0


def test_an_imu_at_rest_reads_gravity_up_and_its_compass_the_heading():
    accelerometer, gyroscope, compass = imu_reading(Motion(Transform(yaw=90.0)))
    assert accelerometer == pytest.approx([0.0, 0.0, 9.81]) and gyroscope == pytest.approx([0.0, 0.0, 0.0])
    assert compass == pytest.approx(math.pi)  # +y is south in CARLA's left-handed frame
    braking = imu_reading(Motion(Transform(), acceleration=(-3.0, 0.0, 0.0)))[0]
    assert braking[0] == pytest.approx(-3.0)


def test_each_measurement_starts_with_its_sensors_header():
    states = SensorStates()
    for type_id, index in MEASURED_TYPE.items():
        payload = states.payload(7, type_id, {}, 12, 0.6, 0.05, Motion(Transform(z=2.0)), [])
        assert struct.unpack_from("<QQd", payload) == (index, 12, 0.6)
    gnss = states.payload(7, "sensor.other.gnss", {}, 1, 0.0, 0.05, Motion(Transform(z=2.0)), [])
    assert msgpack.unpackb(gnss[48:]) == pytest.approx([0.0, 0.0, 2.0])


@pytest.mark.carla
def test_sensor_synchronization_gets_every_sensor_each_tick_even_at_the_origin(client):
    # PythonAPI/examples/sensor_synchronization.py: a camera, two lidars and two radars spawned at
    # carla.Transform() (on the ground, no parent), 0.2 s synchronous ticks, one queue for all of them.
    carla = require_carla()
    world = client.get_world()
    original = world.get_settings()
    settings = world.get_settings()
    settings.fixed_delta_seconds, settings.synchronous_mode = 0.2, True
    world.apply_settings(settings)
    library, frames, sensors = world.get_blueprint_library(), Queue(), []
    try:
        camera_bp = library.find("sensor.camera.rgb")
        camera_bp.set_attribute("image_size_x", "32")
        camera_bp.set_attribute("image_size_y", "16")
        lidar_bp, radar_bp = library.find("sensor.lidar.ray_cast"), library.find("sensor.other.radar")
        blueprints = [camera_bp, lidar_bp, lidar_bp, radar_bp, radar_bp, library.find("sensor.other.gnss"),
                      library.find("sensor.other.imu")]
        for number, blueprint in enumerate(blueprints):
            if blueprint is lidar_bp:
                lidar_bp.set_attribute("points_per_second", str(100000 * (1 + 9 * (number == 2))))
            sensor = world.spawn_actor(blueprint, carla.Transform())
            sensor.listen(lambda data, name=f"{blueprint.id}#{number}": frames.put((data.frame, name, data)))
            sensors.append(sensor)
        for _ in range(2):
            frame = world.tick()
            got = [frames.get(True, 2.0) for _ in sensors]
            assert sorted(f for f, _, _ in got) == [frame] * len(sensors), got
        kinds = {name.split("#")[0]: data for _, name, data in got}
        assert kinds["sensor.lidar.ray_cast"].channels == 32 and isinstance(kinds["sensor.other.imu"].compass, float)
    finally:
        world.apply_settings(original)
        for sensor in sensors:
            sensor.destroy()


@pytest.mark.carla
def test_collision_and_lane_invasion_sensors_spawn_on_a_car_and_stay_silent(client):
    carla = require_carla()
    world = client.get_world()
    library = world.get_blueprint_library()
    car = world.spawn_actor(library.find("vehicle.audi.a2"), world.get_map().get_spawn_points()[4])
    events: list = []
    sensors = [world.spawn_actor(library.find(name), carla.Transform(), attach_to=car)
               for name in ("sensor.other.collision", "sensor.other.lane_invasion")]
    try:
        for sensor in sensors:
            sensor.listen(events.append)
        for _ in range(3):
            world.wait_for_tick(5.0)
        assert events == [] and [s.parent.id for s in sensors] == [car.id, car.id]
    finally:
        for sensor in sensors:
            sensor.destroy()
        car.destroy()


@pytest.mark.carla
def test_manual_control_start_up_calls_are_answered(client, standin):
    # PythonAPI/examples/manual_control.py: every blueprint of its CameraManager list, the HUD's
    # vehicle queries, and modify_vehicle_physics, which catches the error of an unsupported call.
    carla = require_carla()
    world = client.get_world()
    library = world.get_blueprint_library()
    for name in ("sensor.camera.rgb", "sensor.camera.depth", "sensor.camera.semantic_segmentation",
                 "sensor.camera.instance_segmentation", "sensor.lidar.ray_cast", "sensor.camera.dvs",
                 "sensor.camera.optical_flow", "sensor.camera.normals", "sensor.lidar.ray_cast_semantic",
                 "sensor.other.radar", "sensor.other.gnss", "sensor.other.imu"):
        library.find(name)
    car = world.spawn_actor(library.find("vehicle.tesla.model3"), world.get_map().get_spawn_points()[6])
    try:
        assert car.get_light_state() == carla.VehicleLightState.NONE
        assert world.get_level_bbs(carla.CityObjectLabel.TrafficLight) == []
        assert client.get_available_maps() == [world.get_map().name]
        for _ in range(2):
            with pytest.raises(RuntimeError, match="physics control is not supported by the CARLA stand-in"):
                car.get_physics_control()
        with pytest.raises(RuntimeError, match="recorder is not supported"):
            client.start_recorder("drive.log")
    finally:
        car.destroy()
    assert sum("unsupported RPC get_physics_control" in line for line in standin.log) == 1  # logged once
