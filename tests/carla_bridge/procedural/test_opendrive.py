"""The OpenDRIVE map of a procedural town (carla_bridge.procedural.opendrive): a closed network that
CARLA reads without dead ends."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from carla_bridge.procedural.opendrive import town_to_opendrive
from carla_bridge.procedural.town import Town


def test_opendrive_is_a_closed_network():
    town = Town(0)
    root = ET.fromstring(town_to_opendrive(town))
    assert root.tag == "OpenDRIVE" and root.find("header").get("revMinor") == "4"
    roads = {r.get("id"): r for r in root.findall("road")}
    junctions = {j.get("id"): j for j in root.findall("junction")}
    assert len(roads) == len(town.roads) and len(junctions) == len(town.junctions)
    incoming = {(c.get("incomingRoad"), c.find("laneLink").get("from"))
                for j in junctions.values() for c in j.findall("connection")}
    for rid, road in roads.items():
        link = road.find("link")
        assert road.find("planView/geometry") is not None
        if road.get("junction") == "-1":
            assert link.find("predecessor").get("elementId") in junctions
            assert link.find("successor").get("elementId") in junctions
            # both driving lanes flow into a junction: lane -1 at the end, lane 1 at the start
            assert (rid, "-1") in incoming and (rid, "1") in incoming, f"road {rid} dead-ends"
        else:
            assert link.find("predecessor").get("elementId") in roads
            assert link.find("successor").get("elementId") in roads


def test_carla_reads_the_map_without_dead_ends():
    carla = pytest.importorskip("carla")
    town = Town(2)
    cmap = carla.Map("ProceduralTown", town_to_opendrive(town))
    waypoints = cmap.generate_waypoints(6.0)
    assert len(waypoints) > 100
    for start in waypoints[::9]:
        w = start
        for k in range(300):
            nxt = w.next(1.5)
            assert nxt, f"dead end after road {w.road_id} lane {w.lane_id}"
            w = nxt[k % len(nxt)]
    for t in town.spawn_points()[::7]:
        w = cmap.get_waypoint(carla.Location(t.x, t.y, 0.0))
        assert math.hypot(w.transform.location.x - t.x, w.transform.location.y - t.y) < 0.2
        assert abs((w.transform.rotation.yaw - t.yaw + 180) % 360 - 180) < 1.0
