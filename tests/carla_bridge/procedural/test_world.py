"""ProceduralWorld as a Source: determinism, labels, bad input (a ValueError naming what is wrong, never
a traceback from numpy or numba, never a world poisoned for every later tick), weather, the
multi-vehicle API, ego teleports and use after close."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from carla_bridge.core.frames import Control, Source, SourceLost, Transform
from carla_bridge.core.labels import NUM_LABELS, TAG, check_labels
from carla_bridge.procedural import GBuffer, ProceduralWorld, WorldConfig
from carla_bridge.procedural.config import WEATHER_PARAMETERS
from carla_bridge.procedural.opendrive import town_to_opendrive

SMALL = dict(width=64, height=32)
TINY = dict(width=32, height=16, n_vehicles=0, n_pedestrians=0)
NAN, INF = float("nan"), float("inf")


@pytest.fixture
def world():
    world = ProceduralWorld(WorldConfig(seed=0, **TINY))
    world.reset()
    return world


def run(world, ticks=8, seed=None):
    frames = [world.reset(seed)]
    frames += [world.step(Control(autopilot=True)) for _ in range(ticks)]
    return frames


def test_same_seed_same_frames_and_different_seed_different_town():
    a = run(ProceduralWorld(WorldConfig(seed=5, **SMALL)))
    world = ProceduralWorld(WorldConfig(seed=5, **SMALL))
    b = run(world)
    for fa, fb in zip(a, b):
        for name in ("labels", "depth", "flow", "rgb"):
            np.testing.assert_array_equal(getattr(fa, name), getattr(fb, name), err_msg=name)
        assert fa.ego == fb.ego and fa.index == fb.index
    c = run(world, seed=6)  # reset(seed) builds another town
    assert town_to_opendrive(world.town) != town_to_opendrive(ProceduralWorld(WorldConfig(seed=5, **SMALL)).town)
    assert not np.array_equal(a[-1].rgb, c[-1].rgb)
    d = run(world, seed=5)  # and back: identical to a fresh world
    np.testing.assert_array_equal(d[-1].rgb, a[-1].rgb)


def test_frames_are_valid_and_show_many_classes():
    world = ProceduralWorld(WorldConfig(seed=3))
    assert isinstance(world, Source) and world.name == "procedural"
    counts = []
    frame = world.reset()
    assert frame.cut and frame.size == (512, 256)
    for k in range(4):
        for _ in range(25):
            frame = world.step(Control(autopilot=True))
        frame.validate()
        check_labels(frame.labels)
        assert int(frame.labels.max()) < NUM_LABELS
        assert frame.depth.min() > 0 and np.isfinite(frame.flow).all()
        counts.append(len(np.unique(frame.labels)))
        world.respawn()
    assert np.median(counts) >= 12, counts


def test_bad_camera_values_name_the_field():
    world = ProceduralWorld(WorldConfig(n_vehicles=0, n_pedestrians=0, **SMALL))
    pose = world.ego_camera_pose()
    with pytest.raises(ValueError, match="width"):
        world.render_camera(pose, None, 8, 32, 90.0)
    with pytest.raises(ValueError, match="fov"):
        world.render_camera(pose, None, 64, 32, 180.0)
    with pytest.raises(ValueError, match="dt"):
        world.advance(float("inf"))


def test_weather_presets_change_rgb_not_labels():
    world = ProceduralWorld(WorldConfig(seed=1, n_vehicles=0, n_pedestrians=0, **SMALL))
    assert len(world.weather_names) >= 4
    frame = world.reset()
    name = world.set_weather(2)
    assert name == world.weather_names[2]
    other = world.render_camera(world.ego_camera_pose(), None, 64, 32, 90.0)
    np.testing.assert_array_equal(other.labels, frame.labels)
    assert np.abs(other.rgb.astype(int) - frame.rgb).mean() > 5
    # The frame says which weather it shows, in CARLA's terms: the next step carries the new preset.
    np.testing.assert_array_equal(frame.weather, WEATHER_PARAMETERS[world.weather_names[0]])
    assert world.step(Control()).weather.tolist() == WEATHER_PARAMETERS[name].tolist()
    assert set(WEATHER_PARAMETERS) == set(world.weather_names)


def test_multi_vehicle_api():
    world = ProceduralWorld(WorldConfig(seed=2, n_vehicles=2, n_pedestrians=3, **SMALL))
    world.reset()
    assert world.ego_id in world.vehicles and len(world.vehicles) == 3
    spawn = world.town.spawn_points()[5]
    vid = world.spawn_vehicle(spawn)
    assert isinstance(vid, int) and vid not in (world.ego_id,)
    state = world.vehicle_state(vid)
    assert math.isclose(state.transform.x, spawn.x) and math.isclose(state.transform.yaw, spawn.yaw)
    world.apply_vehicle_control(vid, Control(throttle=1.0))
    for _ in range(10):
        world.advance()
    moved = world.vehicle_state(vid)
    assert moved.speed_mps > 1.0 and moved.control.throttle == 1.0  # persists until changed
    world.apply_vehicle_control(vid, Control(autopilot=True))
    for _ in range(20):
        world.advance()
    assert world.vehicle_state(vid).control.autopilot and world.vehicle_state(vid).speed_mps > 1.0
    target = Transform(spawn.x + 1.0, spawn.y, 0.0, 0.0, spawn.yaw + 10.0, 0.0)
    world.set_vehicle_transform(vid, target)
    assert math.isclose(world.vehicle_state(vid).transform.yaw, target.yaw)
    pose = world.ego_camera_pose()
    g = world.render_camera(pose, None, 48, 24, 60.0)
    assert isinstance(g, GBuffer) and g.labels.shape == (24, 48) and g.labels.dtype == np.uint8
    assert g.depth.dtype == np.float32 and g.flow.shape == (24, 48, 2) and g.rgb.shape == (24, 48, 3)
    assert not g.flow.any()  # no previous pose
    moved_pose = dataclasses.replace(pose, x=pose.x + 0.5)
    assert np.abs(world.render_camera(moved_pose, pose, 48, 24, 60.0).flow).max() > 0.1
    world.destroy_vehicle(vid)
    with pytest.raises(ValueError, match="no vehicle"):
        world.vehicle_state(vid)
    with pytest.raises(ValueError, match="ego"):
        world.destroy_vehicle(world.ego_id)
    with world:
        pass


def test_autopilot_frames_report_the_applied_control():
    world = ProceduralWorld(WorldConfig(seed=0, n_vehicles=0, n_pedestrians=0, **SMALL))
    world.reset()
    frames = [world.step(Control(autopilot=True)) for _ in range(10)]
    assert all(f.ego.control.autopilot for f in frames)
    assert max(f.ego.control.throttle for f in frames) > 0.1
    assert frames[-1].index == 10 and math.isclose(frames[-1].time_s, 0.5)
    assert (frames[-1].labels == TAG["Sky"]).any()


@pytest.mark.parametrize("transform, field", [
    (Transform(NAN, 0.0), "x"), (Transform(0.0, INF), "y"), (Transform(0.0, 0.0, yaw=NAN), "yaw"),
    (None, "Transform"), ((1.0, 2.0), "Transform"),
])
def test_non_finite_vehicle_transforms_are_refused(world, transform, field):
    """Taken, a NaN pose would fail every later advance()/step() ("math domain error")."""
    known = sorted(world.vehicles)
    with pytest.raises(ValueError, match=field):
        world.spawn_vehicle(transform)
    with pytest.raises(ValueError, match=field):
        world.set_vehicle_transform(world.ego_id, transform)
    assert sorted(world.vehicles) == known
    world.step(Control(throttle=0.5)).validate()  # the world goes on


@pytest.mark.parametrize("pose, needle", [
    (Transform(NAN, 0.0, 1.7), "pose.x"),
    (Transform(0.0, 0.0, 1.7, yaw=NAN), "pose.yaw"),  # else a numba SystemError, which the stand-in does not catch
    (Transform(0.0, 0.0, INF), "pose.z"),
    (Transform(0.0, 0.0, 0.0), "pose.z"),  # depth 0 on the ground
    (Transform(0.0, 0.0, -1.0), "pose.z"),  # negative depth
    (None, "camera pose"),
])
def test_render_camera_refuses_bad_poses(world, pose, needle):
    with pytest.raises(ValueError, match=needle):
        world.render_camera(pose, None, 32, 16, 90.0)
    good = world.ego_camera_pose()
    with pytest.raises(ValueError, match="prev_pose"):
        world.render_camera(good, Transform(good.x, good.y, good.z, yaw=NAN), 32, 16, 90.0)
    g = world.render_camera(Transform(good.x, good.y, 0.01, yaw=good.yaw), good, 32, 16, 90.0)
    assert (g.depth > 0).all() and np.isfinite(g.depth).all() and np.isfinite(g.flow).all()


@pytest.mark.parametrize("seed", [-1, "a", 1.7, True, np.float64(2.0)])
def test_reset_refuses_bad_seeds_by_name(world, seed):
    before = world.town
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        world.reset(seed)
    assert world.town is before
    assert world.reset(np.int64(0)).cut


def test_more_vehicles_than_spawn_points_are_refused_and_a_full_town_stacks_none():
    """Seed 0 has 107 spawn points: 200 vehicles would share places and drive through each other."""
    with pytest.raises(ValueError, match="WorldConfig.n_vehicles must be at most 106"):
        ProceduralWorld(WorldConfig(width=32, height=16, seed=0, n_vehicles=200, n_pedestrians=0))
    world = ProceduralWorld(WorldConfig(width=32, height=16, seed=0, n_vehicles=100, n_pedestrians=0))
    xy = np.array([(v.x, v.y) for v in world.vehicles.values()])
    gaps = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1]) + np.eye(len(xy)) * 1e9
    assert gaps.min() > 3.0  # one vehicle per spawn point (opposite lanes are 3.5 m apart)
    before = world.town
    with pytest.raises(ValueError, match="n_vehicles"):  # a smaller town: refused before anything changes
        world.reset(262)  # 59 spawn points
    assert world.town is before and world.reset().cut


def test_teleporting_the_ego_cuts_the_next_frame(world):
    """ARCHITECTURE.md: cut is True when the camera jumped. A teleported ego (set_vehicle_transform)
    cuts the next frame, with no flow, or renderers would warp the old view into the new place."""
    world.step(Control(throttle=0.5))
    far = max(world.town.spawn_points(), key=lambda t: math.hypot(t.x - world.vehicles[world.ego_id].x,
                                                                   t.y - world.vehicles[world.ego_id].y))
    world.set_vehicle_transform(world.ego_id, far)
    frame = world.step(Control(throttle=0.5))
    assert frame.cut and not frame.flow.any()
    assert not world.step(Control(throttle=0.5)).cut
    other = world.spawn_vehicle(world.town.spawn_points()[0])
    world.set_vehicle_transform(other, world.town.spawn_points()[1])  # another vehicle: no cut for the ego
    assert not world.step(Control(throttle=0.5)).cut


def test_use_after_close_says_closed(world):
    world.close()
    world.close()  # twice is fine (Source protocol)
    pose = Transform(0.0, 0.0, 1.7)
    for call in (lambda: world.step(Control()), lambda: world.reset(), lambda: world.respawn(),
                 lambda: world.advance(), lambda: world.render_camera(pose, None, 32, 16, 90.0),
                 lambda: world.spawn_vehicle(pose), lambda: world.vehicle_state(1), lambda: world.set_weather(1)):
        with pytest.raises(SourceLost, match="closed"):
            call()


def test_vehicle_ids_dt_and_weather_index_types(world):
    for bad in (1.0, True, "1"):
        with pytest.raises(ValueError, match="no vehicle with id"):
            world.vehicle_state(bad)
    assert world.vehicle_state(np.int64(world.ego_id)).transform == world.vehicle_state(world.ego_id).transform
    with pytest.raises(ValueError, match="dt must be"):
        world.advance(True)
    index = world.step(Control()).index
    world.advance(np.float32(0.05))  # a numpy number is a number
    frame = world.step(Control())
    assert frame.index == index + 2 and type(frame.time_s) is float
    with pytest.raises(ValueError, match="weather index"):
        world.set_weather(True)
