"""The proxy's neural rgb cameras, with the real carla 0.9.16 client -> the proxy -> the stand-in: the
frames are the Renderer's output on the paired semantic and flow frames of each tick, in the rgb
camera's header, delivered within the tick; the helper cameras go when the camera or its client does."""

from __future__ import annotations

import queue
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from carla_bridge.client.codec import decode_flow, decode_rgb, decode_semantic
from support.carla import client, require_carla, standin  # noqa: F401
from support.game import tiny_model_path  # noqa: F401
from support.proxy import proxy  # noqa: F401

pytestmark = pytest.mark.carla

SIZE = (64, 32)
TICKS = 4
HELPERS = ("sensor.camera.semantic_segmentation", "sensor.camera.optical_flow")


def _camera(world, type_id: str, parent, carla):
    blueprint = world.get_blueprint_library().find(type_id)
    blueprint.set_attribute("image_size_x", str(SIZE[0]))
    blueprint.set_attribute("image_size_y", str(SIZE[1]))
    blueprint.set_attribute("fov", "80")
    return world.spawn_actor(blueprint, carla.Transform(carla.Location(x=1.5, z=2.0), carla.Rotation(yaw=5.0)),
                             attach_to=parent)


def _helpers_on_the_server(direct) -> list[int]:
    """The semantic and flow cameras on the stand-in, as of the latest tick ``direct`` (a world of a
    client of the stand-in itself) has seen; waited for when asynchronous."""
    if not direct.get_settings().synchronous_mode:
        direct.wait_for_tick(5.0)
    return [a.id for a in direct.get_actors() if a.type_id in HELPERS]


def test_neural_frames_are_the_renderers_on_the_paired_frames_within_the_tick(proxy, client, tiny_model_path):  # noqa: F811
    carla = require_carla()
    from neural_render.runtime.renderer import Renderer

    direct = client.get_world()  # subscribed to the stand-in's episode state from now on
    proxied = carla.Client("127.0.0.1", proxy.port)
    proxied.set_timeout(10.0)
    world = proxied.get_world()
    original = world.get_settings()
    settings = world.get_settings()
    settings.synchronous_mode, settings.fixed_delta_seconds = True, 0.05
    world.apply_settings(settings)
    library = world.get_blueprint_library()
    car = world.spawn_actor(library.filter("vehicle.*")[0], world.get_map().get_spawn_points()[0])
    cameras = {kind: _camera(world, kind, car, carla) for kind in ("sensor.camera.rgb", *HELPERS)}
    received = {kind: queue.Queue() for kind in cameras}
    for kind, camera in cameras.items():
        camera.listen(received[kind].put)
    try:
        ticks, neural = [], []
        for _ in range(TICKS):
            car.apply_control(carla.VehicleControl(throttle=1.0))
            ticks.append(world.tick())
            if len(ticks) > 1:  # the neural frame of the tick before is there once this tick has returned
                neural.append(received["sensor.camera.rgb"].get_nowait())
        neural.append(received["sensor.camera.rgb"].get(timeout=5.0))
        helper_frames = {kind: [received[kind].get(timeout=5.0) for _ in ticks] for kind in HELPERS}
        assert len(_helpers_on_the_server(direct)) == 2 + 2  # the test's own two and the proxy's two
        with Renderer(str(tiny_model_path), backend="torch", device="cpu", size=SIZE) as renderer:
            for frame, image, semantic, flow in zip(ticks, neural, *helper_frames.values()):
                assert image.frame == semantic.frame == frame
                assert image.timestamp == semantic.timestamp
                assert image.transform == semantic.transform
                assert (image.width, image.height, image.fov) == (*SIZE, pytest.approx(80.0))
                labels, _ = decode_semantic(bytes(semantic.raw_data), *SIZE)
                motion = decode_flow(bytes(flow.raw_data), *SIZE)
                expected = renderer.render(type("Frame", (), {"labels": labels, "flow": motion, "cut": False}))
                np.testing.assert_array_equal(decode_rgb(bytes(image.raw_data), *SIZE), expected)
        assert np.abs(motion).max() > 0  # the car drove: the history was warped by real flow
    finally:
        for camera in cameras.values():
            camera.stop()
        responses = proxied.apply_batch_sync([carla.command.DestroyActor(c.id) for c in (*cameras.values(), car)])
        world.apply_settings(original)
    assert [r.error for r in responses] == [""] * 4
    assert _helpers_on_the_server(direct) == []


# A CARLA program that spawns a neural camera, sees one frame and leaves without destroying it.
LEAVES = textwrap.dedent("""
    import queue, sys
    import carla
    client = carla.Client("127.0.0.1", int(sys.argv[1]))
    client.set_timeout(10.0)
    world = client.get_world()
    blueprint = world.get_blueprint_library().find("sensor.camera.rgb")
    blueprint.set_attribute("image_size_x", "64")
    blueprint.set_attribute("image_size_y", "32")
    camera = world.spawn_actor(blueprint, carla.Transform(carla.Location(z=3.0)))
    frames = queue.Queue()
    camera.listen(frames.put)
    image = frames.get(timeout=10.0)
    print("CAMERA", camera.id, image.width, image.height, flush=True)
""")


def test_the_helper_cameras_go_when_the_client_leaves(proxy, client):  # noqa: F811
    require_carla()
    run = subprocess.run([sys.executable, "-c", LEAVES, str(proxy.port)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("CAMERA"), run.stdout + run.stderr[-2000:]
    _, camera_id, width, height = run.stdout.split()
    assert (int(width), int(height)) == SIZE
    direct = client.get_world()
    deadline = time.monotonic() + 5.0
    while _helpers_on_the_server(direct) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _helpers_on_the_server(direct) == []
    actors = direct.get_actors()
    assert int(camera_id) in [a.id for a in actors]  # its own camera stays, as it would on CARLA
    client.apply_batch_sync([require_carla().command.DestroyActor(int(camera_id))])


def test_a_size_the_model_cannot_render_is_refused_at_the_spawn_and_nothing_spawned(proxy, client):  # noqa: F811
    carla = require_carla()
    proxied = carla.Client("127.0.0.1", proxy.port)
    proxied.set_timeout(10.0)
    world = proxied.get_world()
    blueprint = world.get_blueprint_library().find("sensor.camera.rgb")
    blueprint.set_attribute("image_size_x", "63")
    blueprint.set_attribute("image_size_y", "31")
    with pytest.raises(RuntimeError, match=r"cannot render this rgb camera at 63x31: .*multiples of 8.*"
                                           r"pick another image_size_x/image_size_y"):
        world.spawn_actor(blueprint, carla.Transform(carla.Location(z=3.0)))
    direct = client.get_world()
    direct.wait_for_tick(5.0)
    assert not [a for a in direct.get_actors() if a.type_id.startswith("sensor.camera.")]
