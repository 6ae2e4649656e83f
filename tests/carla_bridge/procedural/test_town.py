"""The procedural road network: lane graph and spawn points."""

from __future__ import annotations

import math

import numpy as np
import pytest

from carla_bridge.procedural.ground import build_ground, material_at
from carla_bridge.procedural.materials import G_JUNCTION
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
