"""Right of way at junctions for the autopilot: a first-come, first-served reservation per junction.

Without it cars on crossing connector lanes drive through each other (measured: 63 overlapping pairs in
6 drives of 4,000 ticks (200 s) with 13 vehicles, one every 19 s of sim time). With it, bumper-to-bumper
gaps (vehicles.route_gap) and trucks and buses kept off tight right turns (vehicles._tight_right_turn):
none there, and 6 in 3 drives of 20,000 ticks, each a bus meeting a vehicle in the opposite lane. The rule
is the one intersection managers use in their simplest form (Dresner & Stone, "A Multiagent Approach to
Autonomous Intersection Management", JAIR 31, 2008, sec. 3: the FCFS policy at the granularity of a
whole intersection):

- A car within APPROACH_M of a junction asks for it. It gets it when every car holding the junction
  came in from the car's own arm (followers on one lane keep their distance through ``route_gap``), and
  no car that asked earlier is still waiting there; otherwise it stops at the entry line and waits.
- It holds the junction until its rear has left it. Waiting cars stand STOP_SETBACK_M before the box:
  a truck or bus turning right sweeps beyond it.
- A car already too close to stop comfortably drives on (and holds), as a driver does at an amber light.
- A car driven by hand (the ego) cannot be asked to wait; inside a junction it holds it against every
  arm, so the autopilot cars wait for it.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

from carla_bridge.procedural.town import Town

APPROACH_M = 20.0  # ask this far before the entry line: the stop at HEADWAY_S needs 1.3 s x 10 m/s + margin
COMFORT_DECEL = 6.0  # m/s^2: closer than v^2 / (2 a) to the line, a car drives on rather than brake hard
STOP_SETBACK_M = 5.0  # wait this far before the entry line: a long vehicle's turn sweeps past the box
CLEAR_M = 1.0  # a car leaves a junction when its rear is this far along the lane out of it
ANY_ARM = ("hand", -1)  # the arm of a car driven by hand: it conflicts with every arm


class Approach(NamedTuple):
    junction: int
    arm: tuple  # the incoming road as (road id, "start" | "end"); ANY_ARM for a car driven by hand
    to_entry: float  # metres from the car's front to the entry line (0 at the line or inside)
    inside: bool  # on one of the junction's connector lanes


def approach(v, town: Town, lane_id: int | None = None) -> Approach | None:
    """The junction the car is in, or reaches within APPROACH_M along its route; None otherwise.
    ``lane_id``: the lane the caller already located a car without a route on (nearest_lane)."""
    if not (v.autopilot and v.route):  # by hand (or not yet routed): only "inside" is known
        if lane_id is None:
            lane_id, _ = town.nearest_lane(v.x, v.y, v.yaw)
        road = town.roads[town.lanes[lane_id].road_id]
        return Approach(road.junction, ANY_ARM, 0.0, True) if road.junction >= 0 else None
    lane = town.lanes[v.route[0]]
    road = town.roads[lane.road_id]
    if road.junction >= 0:
        return Approach(road.junction, road.predecessor, 0.0, True)
    if v.holds >= 0 and float(lane.s[v.index]) < v.size[0] / 2.0 + CLEAR_M:
        # Just out of the junction by its centre, not yet by its rear (a bus is 11 m long): still in it.
        return Approach(v.holds, ("leaving", v.id), 0.0, True)
    following = town.roads[town.lanes[v.route[1]].road_id]
    to_entry = lane.length - float(lane.s[v.index]) - v.size[0] / 2.0
    if following.junction >= 0 and to_entry <= APPROACH_M:
        return Approach(following.junction, following.predecessor, max(0.0, to_entry), False)
    return None


def right_of_way(vehicles: Iterable, town: Town, tick: int, lanes: dict[int, int]) -> dict[int, float]:
    """Update every car's reservation (``holds``, ``waiting_since``) and return {car id: metres to the
    entry line} for the autopilot cars that must stop there this tick. ``lanes``: {car id: the lane it
    is on}, as the world located it this tick (locating a car without a route is a search of the town)."""
    holding: dict[int, set] = {}  # junction -> the arms its holders came from
    requests = []
    for v in vehicles:
        near = approach(v, town, lanes[v.id])
        if near is None:
            v.holds, v.waiting_since = -1, -1
        elif near.inside or v.holds == near.junction:
            v.holds, v.waiting_since = near.junction, -1
            holding.setdefault(near.junction, set()).add(near.arm)
        else:
            if v.waiting_since < 0:
                v.waiting_since = tick
            requests.append((v.waiting_since, near.to_entry, v.id, v, near))

    stops: dict[int, float] = {}
    queued: set[int] = set()  # junctions where a request was refused: later ones queue behind it
    for _, to_entry, _, v, near in sorted(requests, key=lambda r: r[:3]):
        committed = to_entry < v.speed ** 2 / (2.0 * COMFORT_DECEL)
        if committed or (near.junction not in queued and holding.get(near.junction, set()) <= {near.arm}):
            v.holds, v.waiting_since = near.junction, -1
            holding.setdefault(near.junction, set()).add(near.arm)
        else:
            queued.add(near.junction)
            stops[v.id] = to_entry - STOP_SETBACK_M
    return stops
