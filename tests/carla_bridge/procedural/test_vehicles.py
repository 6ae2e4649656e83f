"""Ego kinematics, the autopilot, and collisions with buildings in the procedural world."""

from __future__ import annotations

import math

import numpy as np
import pytest

from carla_bridge.core.frames import Control, Transform
from carla_bridge.core.labels import TAG
from carla_bridge.procedural import ProceduralWorld, WorldConfig
from carla_bridge.procedural.ground import material_at
from carla_bridge.procedural.kernel import P_COS, P_CX, P_CY, P_HX, P_HY, P_KIND, P_LABEL, P_SIN
from carla_bridge.procedural.materials import G_GRASS, G_SIDEWALK


@pytest.fixture(scope="module")
def world():
    return ProceduralWorld(WorldConfig(width=32, height=16, seed=2, n_vehicles=0, n_pedestrians=0))


def drive(world, control, ticks):
    frame = None
    for _ in range(ticks):
        frame = world.step(control)
    return frame


def heading_delta(a_deg, b_deg):
    return (b_deg - a_deg + 180.0) % 360.0 - 180.0


def test_throttle_moves_forward_and_brake_stops(world):
    start = world.reset().ego.transform
    frame = drive(world, Control(throttle=1.0), 30)
    yaw = math.radians(start.yaw)
    ahead = (frame.ego.transform.x - start.x) * math.cos(yaw) + (frame.ego.transform.y - start.y) * math.sin(yaw)
    assert frame.ego.speed_mps > 3.0 and ahead > 3.0
    assert frame.ego.control.throttle == 1.0 and not frame.ego.control.autopilot
    frame = drive(world, Control(brake=1.0), 30)
    assert frame.ego.speed_mps == 0.0
    still = frame.ego.transform
    frame = drive(world, Control(brake=1.0), 5)
    assert frame.ego.transform == still


@pytest.mark.parametrize("steer, sign", [(0.6, 1.0), (-0.6, -1.0)])
def test_positive_steer_turns_right_and_yaw_grows(world, steer, sign):
    world.reset()
    drive(world, Control(throttle=0.8), 15)
    before = world.vehicle_state(world.ego_id).transform.yaw
    frame = drive(world, Control(throttle=0.3, steer=steer), 10)
    assert sign * heading_delta(before, frame.ego.transform.yaw) > 5.0


def test_reverse_goes_backwards_and_hand_brake_stops(world):
    start = world.reset().ego.transform
    frame = drive(world, Control(throttle=1.0, reverse=True), 20)
    yaw = math.radians(start.yaw)
    ahead = (frame.ego.transform.x - start.x) * math.cos(yaw) + (frame.ego.transform.y - start.y) * math.sin(yaw)
    assert frame.ego.speed_mps < -1.0 and ahead < -1.0
    frame = drive(world, Control(hand_brake=True), 30)
    assert frame.ego.speed_mps == 0.0


def _overlap(box_a, box_b) -> bool:
    """Separating-axis test for two (cx, cy, hx, hy, yaw) rectangles (independent of the world's code)."""
    def axes(b):
        return [(math.cos(b[4]), math.sin(b[4])), (-math.sin(b[4]), math.cos(b[4]))]

    def radius(b, ax):
        (c0, s0), (c1, s1) = axes(b)
        return b[2] * abs(c0 * ax[0] + s0 * ax[1]) + b[3] * abs(c1 * ax[0] + s1 * ax[1])

    for ax in axes(box_a) + axes(box_b):
        gap = abs((box_a[0] - box_b[0]) * ax[0] + (box_a[1] - box_b[1]) * ax[1])
        if gap >= radius(box_a, ax) + radius(box_b, ax):
            return False
    return True


def test_driving_at_a_building_collides_and_stops(world):
    world.reset()
    static = world._static
    buildings = static[(static[:, P_LABEL] == TAG["Buildings"]) & (static[:, P_KIND] == 0)]
    tried = 0
    for b in buildings[:40]:
        # Stand 9 m in front of the building's -y or +y face (whichever has open ground), facing it.
        for side in (-1.0, 1.0):
            yaw = math.atan2(b[P_SIN], b[P_COS]) + side * math.pi / 2
            nx, ny = math.cos(yaw), math.sin(yaw)
            dist = b[P_HY] + 9.0
            x, y = b[P_CX] - nx * dist, b[P_CY] - ny * dist
            if material_at(world._ground, world._gorigin, x, y) not in (G_GRASS, G_SIDEWALK):
                continue
            footprints = [(r[P_CX], r[P_CY], r[P_HX], r[P_HY], math.atan2(r[P_SIN], r[P_COS])) for r in buildings]
            if any(_overlap((x, y, 2.25, 0.95, yaw), fp) for fp in footprints):
                continue  # another building stands there
            world.set_vehicle_transform(world.ego_id, Transform(x, y, 0.0, 0.0, math.degrees(yaw), 0.0))
            tried += 1
            for _ in range(120):
                frame = world.step(Control(throttle=1.0))
                t = frame.ego.transform
                ego_box = (t.x, t.y, 2.25, 0.95, math.radians(t.yaw))
                assert not any(_overlap(ego_box, fp) for fp in footprints), "the ego drove into a building"
            assert frame.ego.speed_mps == 0.0, "the ego should have hit something and stopped"
            moved = math.hypot(t.x - x, t.y - y)
            assert moved < 9.0
            if tried >= 2:
                return
    assert tried, "no building with open ground in front of it"


def test_autopilot_follows_lanes_and_keeps_distance():
    world = ProceduralWorld(WorldConfig(width=32, height=16, seed=4, n_vehicles=0, n_pedestrians=0))
    start = world.reset().ego.transform
    travelled, last = 0.0, start
    for _ in range(400):
        frame = world.step(Control(autopilot=True))
        t = frame.ego.transform
        travelled += math.hypot(t.x - last.x, t.y - last.y)
        last = t
        ground = int(material_at(world._ground, world._gorigin, t.x, t.y))
        assert ground >= 3, f"autopilot left the road at ({t.x:.1f}, {t.y:.1f})"
    assert frame.ego.control.autopilot
    assert travelled > 80.0
    # A parked car ahead in the lane: the autopilot stops behind it.
    town = world.town
    lane_id, idx = town.nearest_lane(t.x, t.y, math.radians(t.yaw))
    lane = town.lanes[lane_id]
    while lane.length - lane.s[idx] < 30.0:
        lane = town.lanes[lane.successors[0]]
        idx = 0
    world.set_vehicle_transform(world.ego_id, Transform(*lane.points[idx], 0.0, 0.0,
                                                        math.degrees(lane.headings[idx]), 0.0))
    j = int(np.searchsorted(lane.s, lane.s[idx] + 25.0))
    parked = world.spawn_vehicle(Transform(*lane.points[j], 0.0, 0.0, math.degrees(lane.headings[j]), 0.0))
    world.apply_vehicle_control(parked, Control(brake=1.0))
    for _ in range(200):
        frame = world.step(Control(autopilot=True))
    ego, other = frame.ego.transform, world.vehicle_state(parked).transform
    gap = math.hypot(ego.x - other.x, ego.y - other.y)
    assert frame.ego.speed_mps < 0.3 and 4.6 < gap < 15.0, (frame.ego.speed_mps, gap)


@pytest.fixture
def fresh_world():
    world = ProceduralWorld(WorldConfig(width=32, height=16, seed=0, n_vehicles=0, n_pedestrians=0))
    world.reset()
    return world


def lane_distance(world, vehicle_id) -> float:
    v = world.vehicles[vehicle_id]
    return float(np.min(np.hypot(world.town.lane_points[:, 0] - v.x, world.town.lane_points[:, 1] - v.y)))


def test_autopilot_switched_on_off_the_road_heads_back_to_a_lane(fresh_world):
    """More than 5 m from every lane centre (a park, a block, off the map) the autopilot localises
    once more, on the nearest lane, and drives back to it."""
    world = fresh_world
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
