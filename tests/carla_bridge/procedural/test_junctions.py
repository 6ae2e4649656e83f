"""Right of way at junctions (carla_bridge.procedural.junctions) and bumper-to-bumper following: the
autopilot cars of the procedural world never drive through each other on crossing connector lanes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from carla_bridge.core.frames import Control, Transform
from carla_bridge.procedural import ProceduralWorld, WorldConfig
from carla_bridge.procedural.junctions import approach


def _world(seed: int = 2, n_vehicles: int = 0) -> ProceduralWorld:
    return ProceduralWorld(WorldConfig(width=32, height=16, seed=seed, n_vehicles=n_vehicles, n_pedestrians=0))


def _incoming_lanes(town, junction: int) -> list[int]:
    """One lane id per arm of the junction: the lanes that lead into it."""
    lanes = set()
    for rid in town.junctions[junction].connectors:
        in_road, end = town.roads[rid].predecessor
        lanes.add(town.roads[in_road].lanes[0 if end == "end" else 1])
    return sorted(lanes)


def _pose_before_end(lane, metres: float) -> Transform:
    i = int(np.searchsorted(lane.s, lane.length - metres))
    return Transform(*map(float, lane.points[i]), 0.3, 0.0, math.degrees(float(lane.headings[i])), 0.0)


def _corners(v) -> np.ndarray:
    length, width, _ = v.size
    c, s = math.cos(v.yaw), math.sin(v.yaw)
    return np.array([(v.x + a * c - b * s, v.y + a * s + b * c)
                     for a, b in ((length / 2, width / 2), (length / 2, -width / 2),
                                  (-length / 2, -width / 2), (-length / 2, width / 2))])


def _overlap(a, b) -> bool:
    """Separating axis test of two vehicles' footprints."""
    p, q = _corners(a), _corners(b)
    for poly in (p, q):
        for i in range(4):
            edge = poly[(i + 1) % 4] - poly[i]
            normal = np.array([-edge[1], edge[0]])
            if (p @ normal).max() < (q @ normal).min() or (q @ normal).max() < (p @ normal).min():
                return False
    return True


def _busiest_junction(town) -> int:
    return max(range(len(town.junctions)), key=lambda j: len(_incoming_lanes(town, j)))


def test_two_cars_from_different_arms_cross_one_after_the_other():
    world = _world()
    town = world.town
    junction = _busiest_junction(town)
    first, second = _incoming_lanes(town, junction)[:2]
    a = world.spawn_vehicle(_pose_before_end(town.lanes[first], 16.0), kind="car")
    b = world.spawn_vehicle(_pose_before_end(town.lanes[second], 18.0), kind="car")
    for vid in (a, b):
        world.apply_vehicle_control(vid, Control(autopilot=True))
    world.apply_vehicle_control(world.ego_id, Control(brake=1.0))
    crossed, waited = set(), set()
    for _ in range(400):
        world.advance()
        inside = {vid for vid in (a, b) if (near := approach(world.vehicles[vid], town)) is not None
                  and near.inside and near.junction == junction}
        assert len(inside) < 2, "both cars in the junction at once"
        crossed |= inside
        waited |= {vid for vid in (a, b) if world.vehicles[vid].waiting_since >= 0}
        assert not _overlap(world.vehicles[a], world.vehicles[b])
    assert crossed == {a, b}  # nobody waits for ever
    assert waited == {b}  # the one further from the junction asked later and gave way


def test_autopilot_cars_wait_for_a_car_driven_by_hand_in_the_junction():
    world = _world()
    town = world.town
    junction = _busiest_junction(town)
    connector = town.lanes[town.roads[town.junctions[junction].connectors[0]].lanes[0]]
    middle = len(connector.s) // 2
    world.set_vehicle_transform(world.ego_id, Transform(
        *map(float, connector.points[middle]), 0.3, 0.0, math.degrees(float(connector.headings[middle])), 0.0))
    world.apply_vehicle_control(world.ego_id, Control(brake=1.0))  # standing in the junction
    arm = next(lane for lane in _incoming_lanes(town, junction)
               if town.roads[town.lanes[lane].road_id].id != town.roads[connector.road_id].predecessor[0])
    car = world.spawn_vehicle(_pose_before_end(town.lanes[arm], 25.0), kind="car")
    world.apply_vehicle_control(car, Control(autopilot=True))
    for _ in range(300):
        world.advance()
        assert not _overlap(world.vehicles[car], world.vehicles[world.ego_id])
    near = approach(world.vehicles[car], town)
    assert world.vehicles[car].speed < 0.1 and near is not None and not near.inside and near.to_entry > 1.0
    world.set_vehicle_transform(world.ego_id, _pose_before_end(town.lanes[arm], 60.0))  # the ego drives off
    for _ in range(200):
        world.advance()
    assert world.vehicles[car].holds == -1 and world.vehicles[car].waiting_since == -1  # it went on


def test_a_car_stops_behind_a_bus_bumper_to_bumper():
    world = _world()
    town = world.town
    lane = max((lane for lane in town.lanes if not lane.connector), key=lambda lane: lane.length)
    bus = world.spawn_vehicle(_pose_before_end(lane, 20.0), kind="bus")
    world.apply_vehicle_control(bus, Control(brake=1.0))
    car = world.spawn_vehicle(_pose_before_end(lane, 60.0), kind="car")
    world.apply_vehicle_control(car, Control(autopilot=True))
    world.apply_vehicle_control(world.ego_id, Control(brake=1.0))
    for _ in range(300):
        world.advance()
    c, b = world.vehicles[car], world.vehicles[bus]
    bumpers = math.hypot(c.x - b.x, c.y - b.y) - (c.size[0] + b.size[0]) / 2.0
    assert c.speed < 0.1 and 1.0 < bumpers < 6.0, bumpers  # the centre gap alone drove it into the bus


@pytest.mark.parametrize("seed", [0, 3])
def test_busy_towns_have_no_crossing_collisions(seed):
    """Autopilot traffic of 13 cars for 100 s: no two cars from different arms are in a junction at once."""
    world = _world(seed, n_vehicles=12)
    town = world.town
    world.apply_vehicle_control(world.ego_id, Control(autopilot=True))
    for _ in range(2000):
        world.advance()
        arms: dict[int, set] = {}
        for v in world.vehicles.values():
            lane = town.lanes[v.route[0]]
            road = town.roads[lane.road_id]
            if road.junction >= 0:
                arms.setdefault(road.junction, set()).add(road.predecessor)
        assert all(len(a) == 1 for a in arms.values()), arms


def test_trucks_and_buses_keep_off_tight_right_turns():
    """Their bodies pivot about the centre: on a 5.25 m right turn they would sweep over cars waiting in
    the opposite lane of the road they turn into."""
    from carla_bridge.procedural.vehicles import _tight_right_turn

    world = _world(seed=1)
    town = world.town
    lanes = [lane for lane in town.lanes if not lane.connector]
    buses = [world.spawn_vehicle(_pose_before_end(lanes[i], 30.0), kind=kind)
             for i, kind in zip(range(0, len(lanes), max(1, len(lanes) // 6)), ["bus", "truck"] * 3)]
    for vid in buses:
        world.apply_vehicle_control(vid, Control(autopilot=True))
    taken = set()
    for _ in range(600):
        world.advance()
        for vid in buses:
            taken.update(world.vehicles[vid].route)
    connectors = [lane for lane in taken if town.lanes[lane].connector]
    assert len(connectors) >= 6  # they did cross junctions
    assert not any(_tight_right_turn(town.lanes[lane]) for lane in connectors)
