"""Plane curves the road network is made of: line and arc segments, as in OpenDRIVE's planView.

Coordinates are CARLA's (x forward, y right, metres), headings in radians measured from +x towards
+y, so a positive curvature turns right and makes CARLA's yaw grow. OpenDRIVE is right-handed
(y up): opendrive.py flips y, heading and curvature when it writes a map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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


def wrap_angle(a: float | np.ndarray) -> float | np.ndarray:
    """Angle wrapped to [-pi, pi)."""
    return (np.asarray(a) + math.pi) % (2 * math.pi) - math.pi
