"""The real carla 0.9.16 client against the stand-in server (python -m carla_bridge.standin): the
calls CARLA's own examples make (synchronous_mode.py, manual_control.py) work, with the procedural
world behind them."""

from __future__ import annotations

import queue

import numpy as np
import pytest

from carla_bridge.client.codec import decode_semantic
from support.carla import client, require_carla, standin  # noqa: F401

pytestmark = pytest.mark.carla

PINNED_CARLA = "0.9.16"


def test_installed_client_is_the_pinned_carla_version():
    carla = require_carla()
    from importlib.metadata import version

    installed = version("carla")
    assert installed == PINNED_CARLA, (
        f"the stand-in speaks CARLA {PINNED_CARLA}'s wire protocol, but carla {installed} is installed: "
        f"pip install carla=={PINNED_CARLA}")
    assert carla.Client("127.0.0.1", 1).get_client_version().startswith(PINNED_CARLA)


def test_version_and_settings_round_trip(client):
    assert client.get_server_version() == PINNED_CARLA
    world = client.get_world()
    original = world.get_settings()
    assert not original.synchronous_mode and original.fixed_delta_seconds is None
    settings = world.get_settings()
    settings.synchronous_mode, settings.fixed_delta_seconds = True, 0.05
    world.apply_settings(settings)
    try:
        now = world.get_settings()
        assert now.synchronous_mode and now.fixed_delta_seconds == pytest.approx(0.05)
        first = world.tick()
        assert world.tick() == first + 1
        assert world.get_snapshot().timestamp.delta_seconds == pytest.approx(0.05)
    finally:
        world.apply_settings(original)
    assert not world.get_settings().synchronous_mode


def test_asynchronous_mode_ticks_by_itself(client):
    world = client.get_world()
    first = world.wait_for_tick(5.0).frame
    assert world.wait_for_tick(5.0).frame > first


def test_blueprints_and_a_closed_opendrive_map_with_spawn_points_on_lanes(client):
    world = client.get_world()
    library = world.get_blueprint_library()
    for name in ("sensor.camera.semantic_segmentation", "sensor.camera.optical_flow",
                 "sensor.camera.depth", "sensor.camera.rgb"):
        assert library.find(name).has_attribute("image_size_x")
    assert len(library.filter("vehicle.*")) >= 3
    town = world.get_map()
    spawn_points = town.get_spawn_points()
    assert len(spawn_points) >= 10
    for point in spawn_points[::7]:
        waypoint = town.get_waypoint(point.location, project_to_road=False)
        assert waypoint is not None, f"spawn point {point} is not on a lane"
        heading_error = (waypoint.transform.rotation.yaw - point.rotation.yaw + 180.0) % 360.0 - 180.0
        assert abs(heading_error) < 10.0
    waypoints = town.generate_waypoints(4.0)
    assert waypoints and all(w.next(2.0) for w in waypoints), "the road network has a dead end"


def test_spawned_car_camera_frames_and_destroy(client):
    carla = require_carla()
    world = client.get_world()
    original = world.get_settings()
    settings = world.get_settings()
    settings.synchronous_mode, settings.fixed_delta_seconds = True, 0.05
    world.apply_settings(settings)
    library = world.get_blueprint_library()
    car = world.spawn_actor(library.find("vehicle.audi.a2"), world.get_map().get_spawn_points()[3])
    camera_bp = library.find("sensor.camera.semantic_segmentation")
    camera_bp.set_attribute("image_size_x", "48")
    camera_bp.set_attribute("image_size_y", "24")
    camera = world.spawn_actor(camera_bp, carla.Transform(carla.Location(x=1.6, z=1.7)), attach_to=car)
    frames: queue.Queue = queue.Queue()
    camera.listen(frames.put)
    try:
        car.apply_control(carla.VehicleControl(throttle=1.0))
        start = car.get_location()
        for _ in range(10):
            tick = world.tick()
            image = frames.get(timeout=5.0)
            while image.frame < tick:
                image = frames.get(timeout=5.0)
            assert image.frame == tick and (image.width, image.height) == (48, 24)
        labels, _ = decode_semantic(image.raw_data, 48, 24)
        assert {1, 11} <= set(np.unique(labels).tolist())  # road below, sky above
        assert car.get_location().distance(start) > 0.5 and car.get_control().throttle == 1.0
        assert image.transform.location.distance(car.get_location()) == pytest.approx(np.hypot(1.6, 1.7), abs=0.05)
    finally:
        camera.stop()
        camera.destroy()
        car.destroy()
        world.apply_settings(original)
    assert [a.type_id for a in world.get_actors()] == ["spectator"]


def test_unknown_rpc_is_an_error_in_the_client_not_a_hang(client, standin):
    with pytest.raises(RuntimeError, match="not implemented"):
        client.get_available_maps()
    standin.expected_errors.append("get_available_maps")


def test_a_camera_the_renderer_cannot_draw_is_refused_at_spawn(client, standin):
    carla = require_carla()
    world = client.get_world()
    camera_bp = world.get_blueprint_library().find("sensor.camera.depth")
    camera_bp.set_attribute("image_size_x", "8")
    with pytest.raises(RuntimeError, match="16..8192 pixels"):
        world.spawn_actor(camera_bp, carla.Transform())
    assert world.wait_for_tick(5.0).frame > 0  # time goes on
