"""Where the stand-in must answer as a real CARLA 0.9.16 server does (issue 25), checked through the
real ``carla`` client: each test names the CARLA source it follows."""

from __future__ import annotations

import pytest

from support.carla import client, require_carla, standin  # noqa: F401
from support.carla_examples import SYNCHRONOUS_MODE, TUTORIAL, run_example
from support.msgpack_rpc import RawRpc

pytestmark = pytest.mark.carla


def _spawn_car(client, index: int = 0):
    carla = require_carla()
    world = client.get_world()
    blueprint = world.get_blueprint_library().find("vehicle.audi.a2")
    return carla, world, world.spawn_actor(blueprint, world.get_map().get_spawn_points()[index])


def test_the_bounding_box_of_a_destroyed_actor_is_empty(client):
    # CarlaServer.cpp, get_actor_bounding_box: `if (!CarlaActor) return cr::BoundingBox();`
    carla, _, car = _spawn_car(client)
    assert car.bounding_box.extent.x > 0.0
    client.apply_batch_sync([carla.command.DestroyActor(car.id)])  # the handle does not know it is gone
    box = car.bounding_box
    assert (box.extent.x, box.extent.y, box.extent.z, box.location.z) == (0.0, 0.0, 0.0, 0.0)


@pytest.mark.slow
def test_tutorial_teardown_with_autopilot_cars_exits_cleanly_every_time(standin):
    # PythonAPI/examples/tutorial.py: the cars are destroyed while the Traffic Manager still drives them.
    for run in range(20):
        result = run_example(TUTORIAL, standin, str(standin.tm_port), "0.5")
        assert result.returncode == 0, f"run {run + 1} of 20: exit {result.returncode}\n{result.stderr[-2000:]}"


def test_destroying_a_car_detaches_its_camera_which_stays_where_it_was(client, standin):
    # ActorDispatcher.cpp, DestroyActor: only the actor and its controller go; Unreal detaches the
    # attached actors, keeping their world transform.
    carla, world, car = _spawn_car(client, index=3)
    camera_bp = world.get_blueprint_library().find("sensor.camera.depth")
    camera = world.spawn_actor(camera_bp, carla.Transform(carla.Location(x=1.5, z=2.4)), attach_to=car)
    world.wait_for_tick(5.0)
    before = camera.get_transform().location
    assert car.destroy()
    world.wait_for_tick(5.0)
    fresh = carla.Client("127.0.0.1", standin.port)  # this client caches the camera's parent
    fresh.set_timeout(5.0)
    survivor = fresh.get_world().get_actors([camera.id])
    assert [a.id for a in survivor] == [camera.id] and survivor[0].parent is None
    assert survivor[0].get_transform().location.distance(before) < 0.5
    assert camera.destroy()


def test_synchronous_mode_example_ends_without_a_failed_destroy(standin):
    result = run_example(SYNCHRONOUS_MODE, standin)
    assert result.returncode == 0 and "DONE" in result.stdout, result.stderr[-2000:]
    assert "failed to destroy" not in result.stderr, result.stderr[-2000:]


def test_any_positive_fixed_delta_is_taken_and_a_refused_one_changes_nothing(client, standin):
    # lidar_to_camera.py and no_rendering_mode.py tick with 3.0 s; the server takes any positive value.
    world = client.get_world()
    original = world.get_settings()
    settings = world.get_settings()
    try:
        settings.synchronous_mode, settings.fixed_delta_seconds = True, 3.0
        world.apply_settings(settings)
        before = world.get_snapshot().timestamp.elapsed_seconds
        world.tick()
        assert world.get_snapshot().timestamp.elapsed_seconds - before == pytest.approx(3.0)
        # The carla client sends None for a dt <= 0; a raw client can send anything.
        wire = [True, False, [True, -1.0], True, 0.01, 10, 0.0, False, 3000.0, 2000.0, True]
        reply = RawRpc(standin.port).request("set_episode_settings", [[False], wire])
        assert "fixed_delta_seconds must be a positive number" in str(reply[3]), reply
        assert world.get_settings().fixed_delta_seconds == pytest.approx(3.0)
        world.tick()  # time still runs
    finally:
        world.apply_settings(original)


def test_the_traffic_manager_registry_keeps_the_first_entry_and_never_probes(standin):
    # CarlaServer.cpp: is_ looks up, add refuses a port already listed, destroy says whether it removed.
    rpc, port = RawRpc(standin.port), 65001  # nothing listens there: a dead TM, to a prober
    call = lambda method, *args: rpc.request(method, [[False], *args])[3][0]  # noqa: E731
    assert call("add_traffic_manager_running", ["10.0.0.1", port]) == [1, True]
    assert call("add_traffic_manager_running", ["10.0.0.2", port]) == [1, False]
    assert call("is_traffic_manager_running", port) == [1, True]
    assert call("get_traffic_manager_running", port) == [1, ["10.0.0.1", port]]
    assert call("destroy_traffic_manager", port) == [1, True]
    assert call("destroy_traffic_manager", port) == [1, False]
    assert call("is_traffic_manager_running", port) == [1, False]
