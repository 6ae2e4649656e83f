"""QA of ProceduralWorld used as a library: bad input gives a ValueError naming what is wrong (never a
traceback from numpy or numba, never a world poisoned for every later tick), an autopilot switched on
off the road, crowded towns, ego teleports and use after close."""

from __future__ import annotations

import math

import numpy as np
import pytest

from carla_bridge.core.frames import Control, SourceLost, Transform
from carla_bridge.procedural import ProceduralWorld, WorldConfig

SMALL = dict(width=32, height=16, n_vehicles=0, n_pedestrians=0)
NAN, INF = float("nan"), float("inf")


@pytest.fixture
def world():
    world = ProceduralWorld(WorldConfig(seed=0, **SMALL))
    world.reset()
    return world


def lane_distance(world, vehicle_id) -> float:
    v = world.vehicles[vehicle_id]
    return float(np.min(np.hypot(world.town.lane_points[:, 0] - v.x, world.town.lane_points[:, 1] - v.y)))


def test_autopilot_switched_on_off_the_road_heads_back_to_a_lane(world):
    """More than 5 m from every lane centre (a park, a block, off the map) the autopilot's localisation
    recursed for ever (RecursionError on every tick, the stand-in's tick loop included)."""
    town = world.town
    for where in (Transform((town.xs[0] + town.xs[1]) / 2, (town.ys[0] + town.ys[1]) / 2),  # a block's middle
                  Transform(town.xs[-1] + 30.0, town.ys[-1] + 30.0, yaw=180.0)):  # outside the town
        world.set_vehicle_transform(world.ego_id, where)
        assert lane_distance(world, world.ego_id) > 5.0
        world.apply_vehicle_control(world.ego_id, Control(autopilot=True))
        for _ in range(400):
            world.advance()
        assert lane_distance(world, world.ego_id) < 1.0  # back on a lane, following it
        frame = world.step(Control(autopilot=True))
        assert frame.ego.speed_mps > 2.0 and frame.ego.control.autopilot


@pytest.mark.parametrize("transform, field", [
    (Transform(NAN, 0.0), "x"), (Transform(0.0, INF), "y"), (Transform(0.0, 0.0, yaw=NAN), "yaw"),
    (None, "Transform"), ((1.0, 2.0), "Transform"),
])
def test_non_finite_vehicle_transforms_are_refused(world, transform, field):
    """A NaN pose was taken, and every later advance()/step() failed ("math domain error") for good."""
    known = sorted(world.vehicles)
    with pytest.raises(ValueError, match=field):
        world.spawn_vehicle(transform)
    with pytest.raises(ValueError, match=field):
        world.set_vehicle_transform(world.ego_id, transform)
    assert sorted(world.vehicles) == known
    world.step(Control(throttle=0.5)).validate()  # the world goes on


@pytest.mark.parametrize("pose, needle", [
    (Transform(NAN, 0.0, 1.7), "pose.x"),
    (Transform(0.0, 0.0, 1.7, yaw=NAN), "pose.yaw"),  # was a numba SystemError, which the stand-in does not catch
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


@pytest.mark.parametrize("field, value", [
    ("seed", -1), ("seed", 1.5), ("seed", None), ("seed", "3"), ("seed", True),
    ("max_distance", 0.0), ("max_distance", -5.0), ("max_distance", NAN), ("max_distance", INF), ("max_distance", "x"),
    ("threads", 0), ("threads", -2), ("threads", 1.5), ("threads", "a"), ("threads", True),
    ("camera", None), ("camera", (1.6, 0.0, 1.7)), ("camera", Transform(x=NAN, z=1.7)),
    ("camera", Transform(y=INF, z=1.7)), ("camera", Transform(yaw=NAN, z=1.7)), ("camera", Transform(z="1.7")),
    ("n_vehicles", True), ("n_pedestrians", False), ("delta_s", True), ("weather", True),
])
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"WorldConfig.{field}"):
        WorldConfig(**{**SMALL, field: value})


@pytest.mark.parametrize("seed", [-1, "a", 1.7, True, np.float64(2.0)])
def test_reset_refuses_bad_seeds_by_name(world, seed):
    before = world.town
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        world.reset(seed)
    assert world.town is before
    assert world.reset(np.int64(0)).cut


def test_more_vehicles_than_spawn_points_are_refused_and_a_full_town_stacks_none():
    """200 vehicles on the 107 spawn points of seed 0 stood on 34 places, driving through each other."""
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
    """DESIGN.md: cut is True when the camera jumped (teleport); set_vehicle_transform on the ego then
    step() gave cut=False with a flow from the new place, so renderers warped the old view in."""
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
