"""The procedural road network: lane graph, spawn points and the OpenDRIVE map it writes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from carla_bridge.procedural.ground import build_ground, material_at
from carla_bridge.procedural.materials import G_JUNCTION
from carla_bridge.procedural.opendrive import town_to_opendrive
from carla_bridge.procedural.town import Town


@pytest.mark.parametrize("seed", [0, 3])
def test_lane_graph_is_closed_and_continuous(seed):
    town = Town(seed)
    assert any(seg.curvature != 0 for road in town.roads if road.junction < 0 for seg in road.segments)
    assert len(town.junctions) >= 4
    for lane in town.lanes:
        assert lane.successors, f"lane {lane.id} is a dead end"
        for nxt in lane.successors:
            gap = np.hypot(*(town.lanes[nxt].points[0] - lane.points[-1]))
            turn = abs((town.lanes[nxt].headings[0] - lane.headings[-1] + math.pi) % (2 * math.pi) - math.pi)
            assert gap < 1e-6 and turn < 1e-6


def test_spawn_points_lie_on_lanes_heading_along_them():
    town = Town(1)
    raster, origin = build_ground(town)
    points = town.spawn_points()
    assert len(points) > 30
    for t in points:
        lane_id, idx = town.nearest_lane(t.x, t.y, math.radians(t.yaw))
        lane = town.lanes[lane_id]
        assert np.hypot(*(lane.points[idx] - (t.x, t.y))) < 1e-6
        assert math.isclose(math.degrees(lane.headings[idx]), t.yaw)
        assert material_at(raster, origin, t.x, t.y) >= G_JUNCTION  # road surface
    assert Town(1).spawn_points() == points and Town(2).spawn_points() != points


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


def test_benchmark_and_strip_commands(tmp_path):
    out = subprocess.run([sys.executable, "-m", "carla_bridge.procedural", "--benchmark", "--res", "64x32",
                          "--frames", "3"], capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["res"] == "64x32" and result["frames"] == 3
    for key in ("fps", "labels_only_fps", "ms_p50", "render_fps", "first_frame_s"):
        assert isinstance(result[key], (int, float)) and result[key] >= 0, key
    png = tmp_path / "strip.png"
    subprocess.run([sys.executable, "-m", "carla_bridge.procedural", "--strip", str(png), "--res", "64x32",
                    "--seed", "3"], capture_output=True, text=True, timeout=300, check=True)
    import imageio.v3 as iio

    assert iio.imread(png).shape == (64, 4 * 64, 3)
    bad = subprocess.run([sys.executable, "-m", "carla_bridge.procedural", "--benchmark", "--res", "64"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--res" in bad.stderr
