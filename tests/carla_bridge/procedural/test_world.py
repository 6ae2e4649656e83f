"""ProceduralWorld as a Source: determinism, labels, bad input, weather, and the multi-vehicle API."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from carla_bridge.core.frames import Control, Source, Transform
from carla_bridge.core.labels import NUM_LABELS, TAG, check_labels
from carla_bridge.procedural import GBuffer, ProceduralWorld, WorldConfig
from carla_bridge.procedural.opendrive import town_to_opendrive

SMALL = dict(width=64, height=32)


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


def test_bad_config_and_camera_values_name_the_field():
    for kwargs, field in (({"width": 0}, "width"), ({"height": 100000}, "height"), ({"fov": 0.0}, "fov"),
                          ({"fov": float("nan")}, "fov"), ({"width": 64.5}, "width"), ({"delta_s": -1.0}, "delta_s"),
                          ({"weather": 99}, "weather"), ({"camera": Transform(pitch=10.0)}, "pitch")):
        with pytest.raises(ValueError, match=field):
            WorldConfig(**kwargs)
    world = ProceduralWorld(WorldConfig(n_vehicles=0, n_pedestrians=0, **SMALL))
    pose = world.ego_camera_pose()
    with pytest.raises(ValueError, match="width"):
        world.render_camera(pose, None, 8, 32, 90.0)
    with pytest.raises(ValueError, match="fov"):
        world.render_camera(pose, None, 64, 32, 180.0)
    with pytest.raises(ValueError, match="dt"):
        world.advance(float("inf"))


def test_non_finite_controls_are_refused():
    world = ProceduralWorld(WorldConfig(n_vehicles=0, n_pedestrians=0, **SMALL))
    world.reset()
    with pytest.raises(ValueError, match="throttle"):
        Control(throttle=float("nan"))
    for name in ("throttle", "steer", "brake"):
        bad = Control()
        object.__setattr__(bad, name, float("inf"))  # smuggled past Control's own check
        with pytest.raises(ValueError, match=f"control.{name}"):
            world.step(bad)
    with pytest.raises(ValueError, match="control"):
        world.step(None)


def test_weather_presets_change_rgb_not_labels():
    world = ProceduralWorld(WorldConfig(seed=1, n_vehicles=0, n_pedestrians=0, **SMALL))
    assert len(world.weather_names) >= 4
    frame = world.reset()
    name = world.set_weather(2)
    assert name == world.weather_names[2]
    other = world.render_camera(world.ego_camera_pose(), None, 64, 32, 90.0)
    np.testing.assert_array_equal(other.labels, frame.labels)
    assert np.abs(other.rgb.astype(int) - frame.rgb).mean() > 5


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
