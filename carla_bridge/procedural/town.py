"""The road network of a procedural town: a grid of junctions whose outer corners are rounded arcs.

Roads and lanes are made of line and arc segments, as in OpenDRIVE's planView. Coordinates are
CARLA's (x forward, y right, metres), headings in radians measured from +x towards +y, so a positive
curvature turns right and makes CARLA's yaw grow. OpenDRIVE is right-handed (y up): opendrive.py flips
y, heading and curvature when it writes a map.

Every town is a closed network without dead ends: a grid of nx x ny nodes, the four outer corners
replaced by arcs (so the outer ring is one loop of line + arc + line roads), inner nodes are 3- and
4-way junctions, and some seeds drop an inner road to make a park. Each road carries one lane per
direction (right-hand traffic), each junction connects every incoming lane to every other arm by a
connector lane (straight line or quarter circle), exactly like the connecting roads of OpenDRIVE, so
the same geometry feeds the renderer, the autopilot and the OpenDRIVE map (opendrive.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from carla_bridge.core.frames import Transform

LANE_WIDTH = 3.5
HALF_ROAD = LANE_WIDTH  # one lane each way
SIDEWALK = 3.0
JUNCTION_HALF = 7.0  # half size of a junction box: right turns have lane radius J - w/2
DIRS = ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))  # +x, +y, -x, -y; index*90 deg = yaw


@dataclass(frozen=True)
class Segment:
    """A line (curvature 0) or a circular arc of constant curvature, starting at (x, y) with heading hdg."""

    x: float
    y: float
    hdg: float
    length: float
    curvature: float = 0.0

    def point(self, s: float | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, heading) at arc length s from the start (s may be an array)."""
        s = np.asarray(s, dtype=np.float64)
        k = self.curvature
        if abs(k) < 1e-12:
            return (self.x + s * math.cos(self.hdg), self.y + s * math.sin(self.hdg),
                    np.full_like(s, self.hdg))
        h = self.hdg + k * s
        # Integral of (cos h, sin h) ds with dh/ds = k.
        x = self.x + (np.sin(h) - math.sin(self.hdg)) / k
        y = self.y - (np.cos(h) - math.cos(self.hdg)) / k
        return x, y, h

    @property
    def end(self) -> tuple[float, float, float]:
        x, y, h = self.point(self.length)
        return float(x), float(y), float(h)

    def offset(self, right: float) -> Segment:
        """The parallel curve ``right`` metres to the right (negative: left)."""
        rx, ry = -math.sin(self.hdg), math.cos(self.hdg)
        k = self.curvature
        scale = 1.0 - k * right  # radius 1/k shrinks by `right` when the centre is on the right
        if scale <= 0:
            raise ValueError("offset larger than the arc radius")
        return Segment(self.x + right * rx, self.y + right * ry, self.hdg, self.length * scale, k / scale)

    def reversed(self) -> Segment:
        x, y, h = self.end
        return Segment(x, y, h + math.pi, self.length, -self.curvature)


def sample_segments(segments: list[Segment], step: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points (N, 2), headings (N,) and arc lengths (N,) along consecutive segments, ~step apart."""
    xs, ys, hs, ss = [], [], [], []
    s0 = 0.0
    for i, seg in enumerate(segments):
        n = max(2, int(math.ceil(seg.length / step)) + 1)
        s = np.linspace(0.0, seg.length, n)
        if i > 0:
            s = s[1:]  # the previous segment already holds the joint
        x, y, h = seg.point(s)
        xs.append(x), ys.append(y), hs.append(h), ss.append(s + s0)
        s0 += seg.length
    return (np.stack([np.concatenate(xs), np.concatenate(ys)], axis=1), np.concatenate(hs),
            np.concatenate(ss))


@dataclass
class Lane:
    """A directed lane centre line: sampled points (N, 2), headings (N,), arc length (N,)."""

    id: int
    road_id: int
    segments: list[Segment]
    points: np.ndarray
    headings: np.ndarray
    s: np.ndarray
    connector: bool
    successors: list[int] = field(default_factory=list)

    @property
    def length(self) -> float:
        return float(self.s[-1])


@dataclass
class Road:
    """A road's reference line (its centre); junction >= 0 marks a junction's connecting road."""

    id: int
    segments: list[Segment]
    start_junction: int  # junction at s=0 (-1 for connecting roads)
    end_junction: int
    junction: int = -1
    lanes: tuple[int, ...] = ()  # (forward,) or (forward, backward) lane ids
    predecessor: tuple[int, str] | None = None  # connecting roads: (road id, "start"/"end")
    successor: tuple[int, str] | None = None

    @property
    def length(self) -> float:
        return float(sum(seg.length for seg in self.segments))


@dataclass
class Junction:
    id: int
    x: float
    y: float
    arms: list[int]  # direction indices that have a road
    connectors: list[int] = field(default_factory=list)  # connecting road ids


def _lane(lane_id: int, road_id: int, segments: list[Segment], connector: bool) -> Lane:
    points, headings, s = sample_segments(segments, step=0.5)
    return Lane(lane_id, road_id, segments, points, headings, s, connector)


class Town:
    """Road network for one seed. Build with ``Town(seed)``; everything else derives from it."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng([seed, 7])
        self.seed = seed
        nx, ny = int(rng.integers(3, 5)), int(rng.integers(3, 5))
        self.xs = np.concatenate([[0.0], np.cumsum(rng.uniform(48.0, 72.0, nx - 1))])
        self.ys = np.concatenate([[0.0], np.cumsum(rng.uniform(48.0, 72.0, ny - 1))])
        self.nx, self.ny = nx, ny
        self.corner_radius = float(rng.uniform(12.0, 20.0))
        edges = {((i, j), (i + 1, j)) for i in range(nx - 1) for j in range(ny)}
        edges |= {((i, j), (i, j + 1)) for i in range(nx) for j in range(ny - 1)}
        self.removed_edge = None
        inner = [e for e in edges if all(0 < n[0] < nx - 1 and 0 < n[1] < ny - 1 for n in e)]
        if inner and rng.random() < 0.7:
            self.removed_edge = sorted(inner)[int(rng.integers(len(inner)))]
            edges.discard(self.removed_edge)
        self.edges = edges
        self.corners = {(0, 0), (nx - 1, 0), (0, ny - 1), (nx - 1, ny - 1)}
        self.roads: list[Road] = []
        self.lanes: list[Lane] = []
        self.junctions: list[Junction] = []
        self._build()
        pts = [lane.points for lane in self.lanes]
        self.lane_points = np.concatenate(pts)
        self.lane_headings = np.concatenate([lane.headings for lane in self.lanes])
        self.lane_index = np.concatenate([np.full(len(p), i) for i, p in enumerate(pts)])
        self.lane_sample = np.concatenate([np.arange(len(p)) for p in pts])

    # ---- construction -------------------------------------------------------------------------
    def node_xy(self, node: tuple[int, int]) -> tuple[float, float]:
        return float(self.xs[node[0]]), float(self.ys[node[1]])

    def _arms(self, node: tuple[int, int]) -> list[int]:
        arms = []
        for d, (dx, dy) in enumerate(DIRS):
            other = (node[0] + int(dx), node[1] + int(dy))
            if (node, other) in self.edges or (other, node) in self.edges:
                arms.append(d)
        return arms

    def _build(self) -> None:
        junction_of: dict[tuple[int, int], int] = {}
        for i in range(self.nx):
            for j in range(self.ny):
                if (i, j) not in self.corners:
                    junction_of[(i, j)] = len(self.junctions)
                    self.junctions.append(Junction(len(self.junctions), *self.node_xy((i, j)), self._arms((i, j))))
        # arm_road[(junction, dir)] = (road id, "start" | "end")
        arm_road: dict[tuple[int, int], tuple[int, str]] = {}
        used: set[tuple[tuple[int, int], int]] = set()
        for node, jid in sorted(junction_of.items()):
            for d in self.junctions[jid].arms:
                if (node, d) in used:
                    continue
                chain, dirs = [node], [d]
                cur = (node[0] + int(DIRS[d][0]), node[1] + int(DIRS[d][1]))
                while cur not in junction_of:  # a rounded corner: continue along its other edge
                    chain.append(cur)
                    back = (dirs[-1] + 2) % 4
                    nd = [a for a in self._arms(cur) if a != back][0]
                    dirs.append(nd)
                    cur = (cur[0] + int(DIRS[nd][0]), cur[1] + int(DIRS[nd][1]))
                chain.append(cur)
                used.add((node, d))
                used.add((cur, (dirs[-1] + 2) % 4))
                rid = len(self.roads)
                road = Road(rid, self._road_segments(chain, dirs), jid, junction_of[cur])
                self.roads.append(road)
                arm_road[(jid, d)] = (rid, "start")
                arm_road[(junction_of[cur], (dirs[-1] + 2) % 4)] = (rid, "end")
        for road in self.roads:  # one lane per direction, right-hand traffic
            fwd = _lane(len(self.lanes), road.id, [s.offset(LANE_WIDTH / 2) for s in road.segments], False)
            self.lanes.append(fwd)
            back_segs = [s.offset(-LANE_WIDTH / 2).reversed() for s in reversed(road.segments)]
            bwd = _lane(len(self.lanes), road.id, back_segs, False)
            self.lanes.append(bwd)
            road.lanes = (fwd.id, bwd.id)
        for junction in self.junctions:
            self._connect(junction, arm_road)

    def _road_segments(self, chain: list[tuple[int, int]], dirs: list[int]) -> list[Segment]:
        """Centre line from the first junction box edge through rounded corners to the last."""
        segs: list[Segment] = []
        x, y = self.node_xy(chain[0])
        dx, dy = DIRS[dirs[0]]
        x, y = x + JUNCTION_HALF * dx, y + JUNCTION_HALF * dy
        rc = self.corner_radius
        for k in range(1, len(chain)):
            nx_, ny_ = self.node_xy(chain[k])
            dist = abs(nx_ - x) + abs(ny_ - y)
            last = k == len(chain) - 1
            straight = dist - (JUNCTION_HALF if last else rc)
            hdg = dirs[k - 1] * math.pi / 2
            segs.append(Segment(x, y, hdg, straight))
            if last:
                break
            turn = 1.0 if dirs[k] == (dirs[k - 1] + 1) % 4 else -1.0
            arc = Segment(*segs[-1].end[:2], hdg, rc * math.pi / 2, turn / rc)
            segs.append(arc)
            x, y, _ = arc.end
        return segs

    def _connect(self, junction: Junction, arm_road: dict) -> None:
        """Connector lanes (and OpenDRIVE connecting roads) from every arm to every other arm."""
        cx, cy = junction.x, junction.y
        for a in junction.arms:
            rid_in, end_in = arm_road[(junction.id, a)]
            in_lane = self.roads[rid_in].lanes[0 if end_in == "end" else 1]
            d = (a + 2) % 4  # heading of traffic entering from arm a
            for b in junction.arms:
                if b == a:
                    continue
                rid_out, end_out = arm_road[(junction.id, b)]
                out_lane = self.roads[rid_out].lanes[0 if end_out == "start" else 1]
                sx, sy = cx + JUNCTION_HALF * DIRS[a][0], cy + JUNCTION_HALF * DIRS[a][1]
                hdg = d * math.pi / 2
                if b == d:
                    ref = Segment(sx, sy, hdg, 2 * JUNCTION_HALF)
                else:
                    k = (1.0 if b == (d + 1) % 4 else -1.0) / JUNCTION_HALF
                    ref = Segment(sx, sy, hdg, JUNCTION_HALF * math.pi / 2, k)
                rid = len(self.roads)
                road = Road(rid, [ref], -1, -1, junction=junction.id,
                            predecessor=(rid_in, end_in), successor=(rid_out, end_out))
                lane = _lane(len(self.lanes), rid, [ref.offset(LANE_WIDTH / 2)], True)
                road.lanes = (lane.id,)
                self.roads.append(road)
                self.lanes.append(lane)
                junction.connectors.append(rid)
                self.lanes[in_lane].successors.append(lane.id)
                lane.successors.append(out_lane)

    # ---- queries ------------------------------------------------------------------------------
    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the node grid."""
        return float(self.xs[0]), float(self.ys[0]), float(self.xs[-1]), float(self.ys[-1])

    def spawn_points(self, spacing: float = 14.0) -> list[Transform]:
        """Poses on road lanes (not in junctions), heading along the lane, ``spacing`` m apart."""
        out = []
        for lane in self.lanes:
            if lane.connector:
                continue
            for s in np.arange(8.0, lane.length - 8.0, spacing):
                i = int(np.searchsorted(lane.s, s))
                x, y = lane.points[i]
                out.append(Transform(float(x), float(y), 0.3, 0.0, math.degrees(float(lane.headings[i])), 0.0))
        return out

    def nearest_lane(self, x: float, y: float, yaw_rad: float | None = None) -> tuple[int, int]:
        """(lane id, sample index) of the closest lane point, preferring lanes heading like yaw."""
        d2 = (self.lane_points[:, 0] - x) ** 2 + (self.lane_points[:, 1] - y) ** 2
        if yaw_rad is not None:
            dh = np.abs((self.lane_headings - yaw_rad + math.pi) % (2 * math.pi) - math.pi)
            d2 = d2 + 100.0 * (dh > math.pi / 2.5)
        k = int(np.argmin(d2))
        return int(self.lane_index[k]), int(self.lane_sample[k])

    def block_cells(self) -> list[tuple[int, int]]:
        return [(i, j) for i in range(self.nx - 1) for j in range(self.ny - 1)]

    def cell_corner_radius(self, cell: tuple[int, int], corner: int) -> float:
        """Radius of the road arc around one of a cell's corners (0: x0y0, 1: x1y0, 2: x1y1, 3: x0y1)."""
        i, j = cell
        node = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)][corner]
        return self.corner_radius if node in self.corners else 0.0
