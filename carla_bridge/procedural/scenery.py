"""The world's solids as vertical prisms (the renderer's one primitive, kernel.P_* columns): the static
scenery of a town (buildings, parks, trees, hedges, fences, walls, street lamps, traffic lights, signs
and props) with the uniform grid the ray caster walks to find them, and the moving actors' templates
in their own frame, placed by each tick's pose."""

from __future__ import annotations

import math

import numpy as np

from carla_bridge.core.labels import TAG
from carla_bridge.procedural import materials as M
from carla_bridge.procedural.ground import material_at
from carla_bridge.procedural.kernel import KIND_BOX, KIND_CIRCLE, P_COLS, P_COS, P_CX, P_CY, P_OBJ, P_SIN
from carla_bridge.procedural.town import DIRS, HALF_ROAD, JUNCTION_HALF, SIDEWALK, Town

GRID_CELL = 4.0
FACADES = np.array([(0.72, 0.66, 0.56), (0.62, 0.36, 0.28), (0.55, 0.55, 0.57), (0.82, 0.8, 0.74),
                    (0.45, 0.5, 0.58), (0.78, 0.7, 0.48), (0.5, 0.42, 0.36), (0.7, 0.52, 0.42)])


class PrismList:
    """Accumulates prism rows (see kernel.P_* for the columns)."""

    def __init__(self) -> None:
        self.rows: list[list[float]] = []

    def box(self, cx, cy, hx, hy, yaw, z0, z1, label, mat, color, param=0.0, obj=-1) -> None:
        self.rows.append([KIND_BOX, cx, cy, hx, hy, math.cos(yaw), math.sin(yaw), z0, z1, label, mat,
                          *color, obj, param])

    def circle(self, cx, cy, r, z0, z1, label, mat, color, param=0.0, obj=-1) -> None:
        self.rows.append([KIND_CIRCLE, cx, cy, r, r, 1.0, 0.0, z0, z1, label, mat, *color, obj, param])

    def array(self) -> np.ndarray:
        return np.array(self.rows, np.float64).reshape(-1, P_COLS)


def _tree(p: PrismList, rng, x, y, scale=1.0) -> None:
    trunk_h = rng.uniform(1.8, 2.8) * scale
    r = rng.uniform(1.4, 2.6) * scale
    green = (0.16 + 0.08 * rng.random(), 0.33 + 0.1 * rng.random(), 0.08 + 0.05 * rng.random())
    p.circle(x, y, 0.18 * scale + 0.05, 0.0, trunk_h + 0.5, TAG["Vegetation"], M.M_TRUNK, (0.36, 0.26, 0.17))
    z, param = trunk_h, rng.random()
    for frac, hgt in ((1.0, 1.6), (0.8, 1.4), (0.5, 1.1)):  # a stack of shrinking drums: a rounded crown
        p.circle(x, y, r * frac, z, z + hgt * scale, TAG["Vegetation"], M.M_CANOPY, green, param)
        z += hgt * scale


def _clear(raster, origin, x0, y0, x1, y1) -> bool:
    """True when the rectangle's ground is all grass (no road or sidewalk under it)."""
    xs = np.linspace(x0, x1, 5)
    ys = np.linspace(y0, y1, 5)
    gx, gy = np.meshgrid(xs, ys)
    return bool((material_at(raster, origin, gx, gy) == M.G_GRASS).all())


def _block(p: PrismList, rng, town: Town, cell, raster, origin, park: bool) -> None:
    i, j = cell
    inset = HALF_ROAD + SIDEWALK + 1.0
    a0, a1 = town.xs[i] + inset, town.xs[i + 1] - inset
    b0, b1 = town.ys[j] + inset, town.ys[j + 1] - inset
    if park:
        for _ in range(int((a1 - a0) * (b1 - b0) / 90)):
            x, y = rng.uniform(a0 + 2, a1 - 2), rng.uniform(b0 + 2, b1 - 2)
            if _clear(raster, origin, x - 2, y - 2, x + 2, y + 2):
                _tree(p, rng, x, y, rng.uniform(0.9, 1.5))
        fence = (0.45, 0.36, 0.28) if rng.random() < 0.5 else (0.35, 0.38, 0.36)
        for x0, y0, x1, y1 in ((a0, b0, a1, b0), (a1, b0, a1, b1), (a1, b1, a0, b1), (a0, b1, a0, b0)):
            length = math.hypot(x1 - x0, y1 - y0)
            yaw = math.atan2(y1 - y0, x1 - x0)
            for s in np.arange(4.0, length - 4.0, 6.0):
                cx, cy = x0 + (s + 2.5) * math.cos(yaw), y0 + (s + 2.5) * math.sin(yaw)
                if s % 30 < 6 and s > 10:
                    continue  # a gate
                if _clear(raster, origin, cx - 2.5, cy - 2.5, cx + 2.5, cy + 2.5):
                    if rng.random() < 0.25:
                        p.box(cx, cy, 2.5, 0.45, yaw, 0.0, 1.1, TAG["Vegetation"], M.M_HEDGE, (0.15, 0.32, 0.1))
                    else:
                        p.box(cx, cy, 2.5, 0.04, yaw, 0.0, 1.3, TAG["Fences"], M.M_FENCE, fence)
        for _ in range(3):
            x, y = rng.uniform(a0 + 3, a1 - 3), rng.uniform(b0 + 3, b1 - 3)
            p.box(x, y, 0.9, 0.3, rng.uniform(0, math.pi), 0.0, 0.85, TAG["Static"], M.M_PROP, (0.4, 0.3, 0.2))
        return
    placed: list[tuple[float, float, float, float]] = []
    sides = ((a0, b0, 1.0, 0.0, 1.0), (a1, b0, 0.0, 1.0, -1.0), (a1, b1, -1.0, 0.0, -1.0), (a0, b1, 0.0, -1.0, 1.0))
    for sx, sy, ux, uy, inward in sides:  # walk each side of the block, lots facing the street
        length = abs(a1 - a0) if ux else abs(b1 - b0)
        if ux == 0:
            nx, ny = inward, 0.0
        else:
            nx, ny = 0.0, (1.0 if sy == b0 else -1.0)
        s = rng.uniform(0.0, 3.0)
        while s < length - 6.0:
            w = min(rng.uniform(9.0, 22.0), length - s)
            depth = min(rng.uniform(8.0, 16.0), 0.45 * (b1 - b0 if ux else a1 - a0))
            setback = rng.uniform(0.0, 1.5)
            cx = sx + ux * (s + w / 2) + nx * (setback + depth / 2)
            cy = sy + uy * (s + w / 2) + ny * (setback + depth / 2)
            hx, hy = (w / 2, depth / 2) if ux else (depth / 2, w / 2)
            rect = (cx - hx, cy - hy, cx + hx, cy + hy)
            overlap = any(not (rect[2] <= q[0] or q[2] <= rect[0] or rect[3] <= q[1] or q[3] <= rect[1])
                          for q in placed)
            kind = rng.random()
            if not overlap and _clear(raster, origin, *rect):
                if kind < 0.82:
                    height = 6.0 + 34.0 * rng.random() ** 2.2
                    color = FACADES[rng.integers(len(FACADES))] * rng.uniform(0.85, 1.1)
                    p.box(cx, cy, hx, hy, 0.0, 0.0, height, TAG["Buildings"], M.M_BUILDING, np.clip(color, 0, 1),
                          rng.random())
                    placed.append(rect)
                elif kind < 0.92:  # a walled yard with a tree
                    wall_h = rng.uniform(1.0, 2.2)
                    color = (0.6, 0.55, 0.5) if rng.random() < 0.5 else (0.55, 0.3, 0.25)
                    ex, ey = cx - nx * (depth / 2 - 0.15), cy - ny * (depth / 2 - 0.15)
                    p.box(ex, ey, w / 2 if ux else 0.15, 0.15 if ux else w / 2, 0.0, 0.0, wall_h, TAG["Walls"],
                          M.M_WALL, color)
                    _tree(p, rng, cx, cy)
                    placed.append(rect)
                else:
                    _tree(p, rng, cx, cy, 1.2)
            s += w + rng.uniform(0.0, 3.0)


def _street(p: PrismList, rng, town: Town, raster, origin) -> None:
    """Lamps, trees, signs and props along the sidewalks; traffic lights at every junction arm."""
    lamp_lat = HALF_ROAD + SIDEWALK - 0.5
    for road in town.roads:
        if road.junction >= 0:
            continue
        phase = rng.uniform(0, 10)
        for s in np.arange(6.0 + phase, road.length - 6.0, 11.0):
            acc = 0.0
            for seg in road.segments:
                if s <= acc + seg.length:
                    x, y, h = (float(q) for q in seg.point(s - acc))
                    break
                acc += seg.length
            for side in (1.0, -1.0):
                rx, ry = -math.sin(h) * side, math.cos(h) * side
                k = int(s / 11.0 + (side > 0)) % 4
                roll = rng.random()
                px, py = x + rx * lamp_lat, y + ry * lamp_lat
                if material_at(raster, origin, px, py) != M.G_SIDEWALK:
                    continue
                if k == 0:
                    p.circle(px, py, 0.1, 0.0, 7.0, TAG["Poles"], M.M_POLE, (0.42, 0.43, 0.45))
                    p.box(px - rx * 0.9, py - ry * 0.9, 0.9, 0.08, math.atan2(ry, rx), 6.8, 7.0, TAG["Poles"],
                          M.M_POLE, (0.42, 0.43, 0.45))
                elif k in (1, 3):
                    _tree(p, rng, x + rx * (lamp_lat - 0.3), y + ry * (lamp_lat - 0.3), 0.9)
                elif roll < 0.45:
                    q = x + rx * (HALF_ROAD + 0.7), y + ry * (HALF_ROAD + 0.7)
                    p.circle(*q, 0.05, 0.0, 2.8, TAG["Poles"], M.M_POLE, (0.5, 0.5, 0.52))
                    color = ((0.1, 0.25, 0.7), (0.75, 0.1, 0.1), (0.85, 0.75, 0.1))[int(rng.integers(3))]
                    face = h if side > 0 else h + math.pi
                    p.box(q[0], q[1], 0.03, 0.35, face, 2.1, 2.8, TAG["TrafficSigns"], M.M_SIGN, color)
                elif roll < 0.75:
                    if rng.random() < 0.5:
                        p.circle(px, py, 0.3, 0.0, 1.0, TAG["Static"], M.M_PROP, (0.2, 0.35, 0.25))
                    else:
                        p.box(px, py, 0.8, 0.25, h, 0.0, 0.9, TAG["Static"], M.M_PROP, (0.45, 0.33, 0.2))
                elif roll < 0.82:
                    p.box(px - rx * 0.3, py - ry * 0.3, 1.8, 0.7, h, 0.0, 2.6, TAG["Static"], M.M_PROP,
                          (0.55, 0.6, 0.62))
    for junction in town.junctions:
        for a in junction.arms:
            d = (a + 2) % 4  # heading of the traffic that enters from arm a
            hx, hy = DIRS[d]
            rx, ry = -hy, hx
            bx = junction.x - hx * (JUNCTION_HALF + 0.6) + rx * (HALF_ROAD + 0.8)
            by = junction.y - hy * (JUNCTION_HALF + 0.6) + ry * (HALF_ROAD + 0.8)
            yaw = d * math.pi / 2
            state = rng.random()
            p.circle(bx, by, 0.14, 0.0, 5.8, TAG["Poles"], M.M_POLE, (0.3, 0.32, 0.3))
            p.box(bx - rx * 2.6, by - ry * 2.6, 0.1, 2.6, yaw, 5.5, 5.7, TAG["Poles"], M.M_POLE, (0.3, 0.32, 0.3))
            p.box(bx - rx * 2.9, by - ry * 2.9, 0.18, 0.2, yaw, 4.4, 5.5, TAG["TrafficLight"], M.M_TLIGHT,
                  (0.1, 0.1, 0.1), state)
            p.box(bx, by, 0.16, 0.16, yaw, 2.4, 3.2, TAG["TrafficLight"], M.M_TLIGHT, (0.1, 0.1, 0.1), state)


def _forest(p: PrismList, rng, town: Town) -> None:
    """A ring of trees and hedges outside the town so the horizon is not an empty plane."""
    xmin, ymin, xmax, ymax = town.bounds
    for _ in range(int(2 * (xmax - xmin + ymax - ymin) / 7)):
        side = rng.integers(4)
        off = rng.uniform(14.0, 36.0)
        if side == 0:
            x, y = rng.uniform(xmin - 30, xmax + 30), ymin - off
        elif side == 1:
            x, y = rng.uniform(xmin - 30, xmax + 30), ymax + off
        elif side == 2:
            x, y = xmin - off, rng.uniform(ymin - 30, ymax + 30)
        else:
            x, y = xmax + off, rng.uniform(ymin - 30, ymax + 30)
        _tree(p, rng, x, y, rng.uniform(1.2, 2.2))


def build_scenery(town: Town, raster: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """(n, P_COLS) static prism table for the town (deterministic for the town's seed)."""
    rng = np.random.default_rng([town.seed, 11])
    p = PrismList()
    parks = set()
    if town.removed_edge is not None:
        (i0, j0), (i1, j1) = town.removed_edge
        if j0 == j1:
            parks |= {(i0, j0 - 1), (i0, j0)}
        else:
            parks |= {(i0 - 1, j0), (i0, j0)}
    cells = town.block_cells()
    if not parks:
        parks.add(cells[int(rng.integers(len(cells)))])
    for cell in cells:
        _block(p, rng, town, cell, raster, origin, park=cell in parks)
    _street(p, rng, town, raster, origin)
    _forest(p, rng, town)
    return p.array()


def build_grid(prisms: np.ndarray, origin: np.ndarray, extent: tuple[float, float]):
    """Uniform culling grid (CSR): (cell start offsets, prism ids, (x0, y0, cell, nx, ny))."""
    x0, y0 = float(origin[0]), float(origin[1])
    nx = int(math.ceil(extent[0] / GRID_CELL)) + 1
    ny = int(math.ceil(extent[1] / GRID_CELL)) + 1
    cells: list[list[int]] = [[] for _ in range(nx * ny)]
    for k, row in enumerate(prisms):
        c, s = abs(row[5]), abs(row[6])
        ex = row[3] * c + row[4] * s
        ey = row[3] * s + row[4] * c
        i0, i1 = int((row[1] - ex - x0) // GRID_CELL), int((row[1] + ex - x0) // GRID_CELL)
        j0, j1 = int((row[2] - ey - y0) // GRID_CELL), int((row[2] + ey - y0) // GRID_CELL)
        for j in range(max(0, j0), min(ny - 1, j1) + 1):
            for i in range(max(0, i0), min(nx - 1, i1) + 1):
                cells[j * nx + i].append(k)
    start = np.zeros(nx * ny + 1, np.int32)
    start[1:] = np.cumsum([len(c) for c in cells])
    items = np.array([k for c in cells for k in c], np.int32)
    return start, items, np.array([x0, y0, GRID_CELL, nx, ny], np.float64)


# ---- moving actors ----------------------------------------------------------------------------
CAR_COLORS = np.array([(0.75, 0.75, 0.78), (0.08, 0.08, 0.1), (0.6, 0.08, 0.08), (0.1, 0.2, 0.5),
                       (0.9, 0.9, 0.88), (0.35, 0.37, 0.4), (0.15, 0.35, 0.2), (0.8, 0.55, 0.1)])


def vehicle_template(kind: str, color) -> np.ndarray:
    """Prisms of one vehicle in its own frame (x forward, y right)."""
    p = PrismList()
    if kind == "car":
        p.box(0.0, 0.0, 2.25, 0.95, 0.0, 0.2, 1.0, TAG["Car"], M.M_CAR_BODY, color)
        p.box(-0.3, 0.0, 1.25, 0.85, 0.0, 1.0, 1.48, TAG["Car"], M.M_CAR_CABIN, color)
    elif kind == "truck":
        p.box(2.7, 0.0, 0.9, 1.2, 0.0, 0.35, 2.1, TAG["Truck"], M.M_CAR_BODY, color)
        p.box(2.6, 0.0, 0.8, 1.15, 0.0, 2.1, 2.9, TAG["Truck"], M.M_CAR_CABIN, color)
        p.box(-0.9, 0.0, 2.65, 1.25, 0.0, 0.7, 3.6, TAG["Truck"], M.M_PROP, (0.85, 0.85, 0.82))
    else:
        p.box(0.0, 0.0, 5.5, 1.3, 0.0, 0.3, 1.5, TAG["Bus"], M.M_CAR_BODY, color)
        p.box(0.0, 0.0, 5.45, 1.28, 0.0, 1.5, 2.8, TAG["Bus"], M.M_CAR_CABIN, color)
        p.box(0.0, 0.0, 5.5, 1.3, 0.0, 2.8, 3.1, TAG["Bus"], M.M_PROP, color)
    return p.array()


def pedestrian_template(shirt, param: float) -> np.ndarray:
    p = PrismList()
    p.circle(0.0, 0.0, 0.24, 0.0, 1.75, TAG["Pedestrians"], M.M_PEDESTRIAN, shirt, param)
    return p.array()


def place(templates: list[np.ndarray], poses: np.ndarray) -> np.ndarray:
    """World prisms of actors: template rows moved by (x, y, yaw) poses; P_OBJ = actor index."""
    if not templates:
        return np.zeros((0, P_COLS))
    counts = [len(t) for t in templates]
    rows = np.concatenate(templates).copy()
    obj = np.repeat(np.arange(len(templates)), counts)
    x, y, yaw = poses[obj, 0], poses[obj, 1], poses[obj, 2]
    c, s = np.cos(yaw), np.sin(yaw)
    lx, ly = rows[:, P_CX].copy(), rows[:, P_CY].copy()
    rows[:, P_CX] = x + lx * c - ly * s
    rows[:, P_CY] = y + lx * s + ly * c
    lc, ls = rows[:, P_COS].copy(), rows[:, P_SIN].copy()
    rows[:, P_COS] = lc * c - ls * s
    rows[:, P_SIN] = ls * c + lc * s
    rows[:, P_OBJ] = obj
    return rows
