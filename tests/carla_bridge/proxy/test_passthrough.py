"""The real carla 0.9.16 client -> the proxy -> the stand-in: every call and every stream passes
through as if the client spoke to the stand-in itself."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from support.carla import StandinProcess, client, require_carla, standin  # noqa: F401
from support.game import tiny_model_path  # noqa: F401
from support.proxy import ProxyProcess, proxy  # noqa: F401

pytestmark = pytest.mark.carla


@pytest.fixture
def proxied(proxy):  # noqa: F811
    carla = require_carla()
    client = carla.Client("127.0.0.1", proxy.port)
    client.set_timeout(5.0)
    return client


def test_settings_set_through_the_proxy_are_the_servers_and_ticks_pass_through(proxied, client):  # noqa: F811
    through, direct = proxied.get_world(), client.get_world()
    original = through.get_settings()
    settings = through.get_settings()
    settings.synchronous_mode, settings.fixed_delta_seconds = True, 0.05
    through.apply_settings(settings)
    try:
        served = direct.get_settings()  # what the stand-in itself now holds
        assert served.synchronous_mode and served.fixed_delta_seconds == pytest.approx(0.05)
        assert through.get_settings() == served
        frame = through.tick()
        assert direct.get_snapshot().frame == frame == through.get_snapshot().frame
    finally:
        through.apply_settings(original)
    assert not direct.get_settings().synchronous_mode


# The Traffic Manager lives in its client's process and talks to the server until that process exits:
# this client runs in a process of its own, which ends before the proxy and the stand-in do.
AUTOPILOT = textwrap.dedent("""
    import queue, sys
    import carla
    port, tm_port = int(sys.argv[1]), int(sys.argv[2])
    client = carla.Client("127.0.0.1", port)
    client.set_timeout(5.0)
    world = client.get_world()
    original = world.get_settings()
    settings = world.get_settings()
    settings.synchronous_mode, settings.fixed_delta_seconds = True, 0.05
    world.apply_settings(settings)
    tm = client.get_trafficmanager(tm_port)
    tm.set_synchronous_mode(True)
    library = world.get_blueprint_library()
    car = world.spawn_actor(library.filter("vehicle.*")[0], world.get_map().get_spawn_points()[0])
    camera_bp = library.find("sensor.camera.semantic_segmentation")
    camera_bp.set_attribute("image_size_x", "64")
    camera_bp.set_attribute("image_size_y", "32")
    camera = world.spawn_actor(camera_bp, carla.Transform(carla.Location(x=1.5, z=2.0)), attach_to=car)
    frames = queue.Queue()
    camera.listen(frames.put)
    car.set_autopilot(True, tm_port)
    start = car.get_transform().location
    for _ in range(20):
        tick = world.tick()
        image = frames.get(timeout=5.0)
        while image.frame < tick:
            image = frames.get(timeout=5.0)
        print("FRAME", image.frame == tick, image.width, image.height)
    print("MOVED", car.get_transform().location.distance(start) > 0.5)
    print("LISTED", car.id in [a.id for a in world.get_actors().filter("vehicle.*")])
    camera.stop()
    car.set_autopilot(False, tm_port)  # before the destroy, as CARLA's examples do
    responses = client.apply_batch_sync([carla.command.DestroyActor(x) for x in (camera.id, car.id)])
    world.tick()  # the client's actor list is the episode state of the last tick
    print("DESTROYED", [r.error for r in responses], car.id in [a.id for a in world.get_actors()])
    tm.set_synchronous_mode(False)
    world.apply_settings(original)
    print("RESTORED", world.get_settings().synchronous_mode)
""")


def test_a_car_on_autopilot_with_a_camera_streams_through_the_proxy(proxy, standin):  # noqa: F811
    require_carla()
    run = subprocess.run([sys.executable, "-c", AUTOPILOT, str(proxy.port), str(standin.tm_port)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines.count("FRAME True 64 32") == 20, run.stdout
    assert lines[20:] == ["MOVED True", "LISTED True", "DESTROYED ['', ''] False", "RESTORED False"]


def test_a_killed_server_ends_the_wait_with_carlas_time_out(tiny_model_path):  # noqa: F811
    carla = require_carla()
    upstream = StandinProcess("--pedestrians", "0")
    proxy = ProxyProcess(upstream.port, tiny_model_path)
    try:
        client = carla.Client("127.0.0.1", proxy.port)
        client.set_timeout(2.0)
        world = client.get_world()
        assert world.get_settings() is not None
        upstream.kill()
        began = time.monotonic()
        with pytest.raises(RuntimeError, match="time-out of 2000ms while waiting for the simulator"):
            world.get_settings()
        assert time.monotonic() - began < 10.0
    finally:
        upstream.kill()
        assert proxy.stop() == 0, "".join(proxy.log[-30:])
