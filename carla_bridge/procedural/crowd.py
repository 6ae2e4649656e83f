"""Pedestrians walking loops on the sidewalks around the blocks (vectorised: one numpy update per tick).

Each block gets two closed walking paths on its sidewalk: a rectangle at a fixed distance from the
road centre lines whose corners are rounded; where the block touches a rounded town corner the path
corner is concentric with the road arc, so it stays on the sidewalk.
"""

from __future__ import annotations

import math

import numpy as np

from carla_bridge.procedural.town import HALF_ROAD, Segment, Town, sample_segments

STEP = 0.25


def rounded_rect(a0: float, b0: float, a1: float, b1: float, radii: list[float]) -> list[Segment]:
    """Closed loop (x0y0 -> x1y0 -> x1y1 -> x0y1), corners rounded with radii[0..3], turning right."""
    r0, r1, r2, r3 = (max(0.5, r) for r in radii)
    segs = [Segment(a0 + r0, b0, 0.0, a1 - r1 - a0 - r0)]
    corners = ((r1, b1 - r2 - b0 - r1), (r2, a1 - r2 - a0 - r3), (r3, b1 - r3 - b0 - r0), (r0, None))
    for k, (r, straight) in enumerate(corners):
        x, y, h = segs[-1].end
        segs.append(Segment(x, y, h, r * math.pi / 2, 1.0 / r))
        if straight is not None:
            x, y, h = segs[-1].end
            segs.append(Segment(x, y, h, straight))
    return segs


class Crowd:
    """n pedestrians: path id, arc length and signed speed; poses (x, y, yaw) now and a tick ago."""

    def __init__(self, town: Town, n: int, seed: int) -> None:
        rng = np.random.default_rng([seed, 23])
        paths = []
        for cell in town.block_cells():
            i, j = cell
            for off in (HALF_ROAD + 1.1, HALF_ROAD + 2.4):
                radii = [town.cell_corner_radius(cell, c) for c in range(4)]
                radii = [r - off if r > 0 else 1.0 for r in radii]
                segs = rounded_rect(town.xs[i] + off, town.ys[j] + off, town.xs[i + 1] - off,
                                    town.ys[j + 1] - off, radii)
                pts, _, s = sample_segments(segs, step=0.5)
                uniform = np.arange(0.0, s[-1], STEP)
                paths.append(np.stack([np.interp(uniform, s, pts[:, 0]), np.interp(uniform, s, pts[:, 1])], 1))
        self.path_start = np.cumsum([0] + [len(p) for p in paths])[:-1]
        self.path_len = np.array([len(p) for p in paths])
        self.points = np.concatenate(paths)
        self.n = n
        self.path = rng.integers(len(paths), size=n)
        self.s = rng.random(n) * self.path_len[self.path] * STEP
        self.speed = rng.uniform(0.9, 1.6, n) * np.where(rng.random(n) < 0.5, -1.0, 1.0)
        self.shirt = rng.random((n, 3)) * 0.7 + 0.15
        self.param = rng.random(n)
        self.pose = self._pose()
        self.prev = self.pose.copy()

    def _pose(self) -> np.ndarray:
        if self.n == 0:
            return np.zeros((0, 3))
        total = self.path_len[self.path] * STEP
        s = np.mod(self.s, total)
        f = s / STEP
        i0 = np.floor(f).astype(int)
        i1 = (i0 + 1) % self.path_len[self.path]
        t = (f - i0)[:, None]
        a = self.points[self.path_start[self.path] + i0]
        b = self.points[self.path_start[self.path] + i1]
        xy = a * (1 - t) + b * t
        yaw = np.arctan2(b[:, 1] - a[:, 1], b[:, 0] - a[:, 0]) + np.where(self.speed < 0, np.pi, 0.0)
        return np.column_stack([xy, yaw])

    def advance(self, dt: float) -> None:
        self.prev = self.pose
        self.s = self.s + self.speed * dt
        self.pose = self._pose()
