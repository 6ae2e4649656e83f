"""CarlaSource through the real carla 0.9.16 client against the stand-in serving the procedural world:
frames paired by id, the codec's conversions against the procedural world's own arrays, controls,
Traffic Manager autopilot, respawn, weather, and the errors of a start that cannot work (no server,
bad arguments, a filter that matches no car, a Traffic Manager port in use)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from carla_bridge.core.frames import Control, Transform
from carla_bridge.core.labels import NUM_LABELS
from support.carla import StandinProcess, client, free_port_pair, require_carla, standin  # noqa: F401

pytestmark = pytest.mark.carla

SIZE = (64, 32)


@pytest.fixture
def source(standin):
    require_carla()
    from carla_bridge.client.source import CarlaSource

    with CarlaSource(port=standin.port, tm_port=standin.tm_port, size=SIZE, seed=3, timeout_s=5.0) as s:
        yield s


def test_frames_are_paired_by_id_with_every_camera(source):
    first = source.reset()
    assert first.cut and first.index == 0 and first.time_s == 0.0
    first.validate()
    assert first.labels.shape == (32, 64) and first.flow.shape == (32, 64, 2)
    assert first.depth.shape == (32, 64) and first.rgb.shape == (32, 64, 3)
    assert int(first.labels.max()) < NUM_LABELS and {1, 11} <= set(np.unique(first.labels).tolist())
    frames = [source.step(Control(throttle=0.5)) for _ in range(3)]
    assert [f.index for f in frames] == [1, 2, 3] and not any(f.cut for f in frames)
    assert frames[-1].time_s == pytest.approx(3 * 0.05)


def _reference_world():
    from carla_bridge.procedural import ProceduralWorld, WorldConfig

    return ProceduralWorld(WorldConfig(width=SIZE[0], height=SIZE[1], seed=0, n_vehicles=0, n_pedestrians=0))


def _camera(pose: Transform) -> Transform:
    yaw = math.radians(pose.yaw)
    return Transform(pose.x + 1.6 * math.cos(yaw), pose.y + 1.6 * math.sin(yaw), pose.z + 1.7, 0.0, pose.yaw, 0.0)


def test_labels_depth_and_flow_match_the_procedural_world(source):
    """The stand-in encodes the world's arrays in CARLA's formats, the source decodes them: what comes
    out must be what the procedural world renders at that camera pose (the codec round trip end to
    end, flow sign included)."""
    source.reset()
    frames = [source.step(Control(throttle=1.0)) for _ in range(8)]
    previous, frame = frames[-2], frames[-1]
    reference = _reference_world().render_camera(_camera(frame.ego.transform), _camera(previous.ego.transform),
                                                 *SIZE, 90.0)
    assert np.mean(frame.labels == reference.labels) > 0.97
    near = reference.depth < 200.0
    np.testing.assert_allclose(frame.depth[near], reference.depth[near], rtol=2e-3, atol=0.02)
    assert np.median(np.abs(frame.flow - reference.flow)) < 0.05
    # Driving forward, the scene expands from the centre: backward flow points inwards.
    road = frame.labels[20:, :] == 1
    flow_x = frame.flow[20:, :, 0]
    assert np.median(flow_x[:, 40:][road[:, 40:]]) < 0 < np.median(flow_x[:, :24][road[:, :24]])


def test_throttle_and_steer_move_the_car(source):
    start = source.reset().ego
    for _ in range(20):
        frame = source.step(Control(throttle=1.0))
    moved = frame.ego
    assert moved.speed_mps > 1.0 and moved.control.throttle == 1.0
    yaw = math.radians(start.transform.yaw)
    along = (moved.transform.x - start.transform.x) * math.cos(yaw) + (moved.transform.y - start.transform.y) * math.sin(yaw)
    assert along > 1.0
    for _ in range(10):
        frame = source.step(Control(throttle=0.5, steer=0.5))
    turned = (frame.ego.transform.yaw - moved.transform.yaw + 180.0) % 360.0 - 180.0
    assert turned > 2.0  # positive steer turns right: yaw grows in CARLA's left-handed frame


def test_traffic_manager_autopilot_drives_along_the_road(source):
    start = source.reset().ego.transform
    for _ in range(60):
        frame = source.step(Control(autopilot=True))
    assert frame.ego.control.autopilot and frame.ego.speed_mps > 1.0
    assert math.hypot(frame.ego.transform.x - start.x, frame.ego.transform.y - start.y) > 5.0
    assert np.mean(frame.labels[-4:, 24:40] == 1) > 0.5  # the road is still under the bonnet
    manual = source.step(Control(throttle=0.0, brake=1.0))
    assert not manual.ego.control.autopilot and manual.ego.control.brake == 1.0


def test_autopilot_ticks_open_no_connection_of_their_own(source, monkeypatch):
    # A TCP probe per tick is about 20 connections a second to a real server's RPC port; the source
    # probes only once an RPC failed, to tell a dead server from a hung one.
    from carla_bridge.client import source as source_module

    probes = []
    monkeypatch.setattr(source_module, "carla_server_answers", lambda *a, **k: probes.append(a) or True)
    source.reset()
    for _ in range(5):
        source.step(Control(autopilot=True))
    assert probes == []


def test_respawn_and_weather(source, client):
    first = source.reset().ego.transform
    frame = source.respawn()
    assert frame.cut and (frame.ego.transform.x, frame.ego.transform.y) != (first.x, first.y)
    assert source.set_weather(source.weather_names.index("ClearSunset")) == "ClearSunset"
    weather = client.get_world().get_weather()
    assert weather.sun_altitude_angle == pytest.approx(require_carla().WeatherParameters.ClearSunset.sun_altitude_angle)
    # The next frame tells the renderer: sun at 15 degrees, scaled to (15 + 90) / 180 * 2 - 1.
    assert source.step(Control()).weather[0] == pytest.approx(15.0 / 90.0)


def test_no_server_is_a_clear_connection_error():
    require_carla()
    from carla_bridge.client.source import CarlaConnectionError, CarlaSource
    from carla_bridge.core.net import carla_server_answers

    port, _ = free_port_pair()
    assert not carla_server_answers("127.0.0.1", port)
    started = time.monotonic()
    with pytest.raises(CarlaConnectionError) as error:
        CarlaSource(port=port, timeout_s=2.0)
    message = str(error.value)
    assert f"127.0.0.1:{port}" in message and "CarlaUE4.sh -RenderOffScreen" in message
    assert "--source procedural" in message and time.monotonic() - started < 3.0


def test_bad_arguments_name_the_field():
    from carla_bridge.client.source import CarlaSource

    with pytest.raises(ValueError, match="size"):
        CarlaSource(size=(8, 8))
    with pytest.raises(ValueError, match="cameras must include 'semantic'"):
        CarlaSource(cameras=("rgb",))


def _only_spectator_left(client) -> list[str]:
    world = client.get_world()
    world.wait_for_tick(5.0)
    return [a.type_id for a in world.get_actors()]


def test_a_filter_that_matches_no_vehicle_is_refused(standin, client):
    from carla_bridge.client.source import CarlaSource

    # a camera blueprint has no wheel count, and no controls for the drive to ask for each tick
    with pytest.raises(ValueError, match=r"--filter 'sensor\.camera\.rgb' matches no 4-wheeled vehicle blueprint "
                                         r".*; try vehicle\.\* or one of vehicle\.audi\.a2, "):
        CarlaSource(port=standin.port, tm_port=standin.tm_port, size=SIZE, timeout_s=5.0,
                    vehicle_filter="sensor.camera.rgb")
    assert _only_spectator_left(client) == ["spectator"]


def test_manual_control_flags_reach_the_server(standin, client):
    from carla_bridge.client.source import CarlaSource

    world = client.get_world()  # listens from here: the source's ticks bring it the new actors
    with CarlaSource(port=standin.port, tm_port=standin.tm_port, size=SIZE, seed=3, timeout_s=5.0,
                     rolename="ego_vehicle", generation="2", gamma=1.8) as source:
        source.reset()
        source.step(Control())
        actors = world.get_actors()
        assert actors.filter("vehicle.*")[0].attributes["role_name"] == "ego_vehicle"
        assert float(actors.filter("sensor.camera.rgb")[0].attributes["gamma"]) == pytest.approx(1.8)
    with pytest.raises(ValueError, match=r"matches no generation 1 vehicle .*; pass --generation All"):
        CarlaSource(port=standin.port, tm_port=standin.tm_port, size=SIZE, timeout_s=5.0, generation="1")
    # manual_control.py's rule: a filter naming one blueprint ignores the generation
    CarlaSource(port=standin.port, tm_port=standin.tm_port, size=SIZE, timeout_s=5.0, generation="1",
                vehicle_filter="vehicle.audi.a2").close()
    assert _only_spectator_left(client) == ["spectator"]


def test_a_traffic_manager_port_in_use_is_named(standin, client):
    from carla_bridge.client.source import CarlaConnectionError, CarlaSource

    source = CarlaSource(port=standin.port, tm_port=standin.port, size=SIZE, seed=3, timeout_s=5.0)
    try:
        source.reset()
        with pytest.raises(CarlaConnectionError) as error:  # the port's fault, not the server's
            source.step(Control(autopilot=True))
    finally:
        source.close()
    assert str(error.value) == (f"the Traffic Manager cannot listen on port {standin.port} (it is the CARLA "
                                f"server's own port): the port is in use; pass another --tm-port (default 8000)")
    assert _only_spectator_left(client) == ["spectator"]


CUSTOM_ASSET = """
from carla_bridge.standin import world
encode = world._encode
def with_a_custom_asset(type_id, gbuffer):
    raw = bytearray(encode(type_id, gbuffer))
    if type_id == "sensor.camera.semantic_segmentation":
        raw[2] = 40  # the red byte of pixel (0, 0): a tag CARLA's table lacks
    return bytes(raw)
world._encode = with_a_custom_asset
"""


def test_a_tag_outside_carla_s_table_is_drawn_unlabeled_and_counted():
    # CARLA's ColorConverter.h wraps unknown tags (tag % 29): a custom asset's stray pixel is no error.
    require_carla()
    from carla_bridge.client.source import CarlaSource

    server = StandinProcess("--pedestrians", "0", patch=CUSTOM_ASSET)
    try:
        with CarlaSource(port=server.port, tm_port=server.tm_port, size=SIZE, seed=3, timeout_s=5.0,
                         cameras=("semantic",)) as source:
            frames = [source.reset(), source.step(Control())]
    finally:
        assert server.stop() == 0
    assert [int(frame.labels[0, 0]) for frame in frames] == [0, 0]
    assert source.unknown_tag_pixels == 2
