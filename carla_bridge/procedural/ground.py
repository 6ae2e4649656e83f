"""The ground raster: one material id per 10 cm texel (road, lane lines, crosswalks, curbs, sidewalks,
grass), rasterised from the road reference lines, so road surface and markings follow the same line
and arc segments as the lanes and the OpenDRIVE map."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from carla_bridge.procedural.materials import G_CROSSWALK, G_CURB, G_JUNCTION, G_LINE, G_ROAD, G_SIDEWALK
from carla_bridge.procedural.town import HALF_ROAD, SIDEWALK, Town

RES = 0.1
MARGIN = 40.0


@njit(cache=True)
def _rasterize(segs, raster, x0, y0, res, hw, sw):
    """segs rows: x, y, hdg, length, curvature, s_offset, road_length, connector (0/1)."""
    gh, gw = raster.shape
    reach = hw + sw
    for i in range(segs.shape[0]):
        sx, sy, h, length, k, s_off, road_len, conn = segs[i]
        ch, sh = math.cos(h), math.sin(h)
        # Bounding box: segment end points and, for arcs, the whole circle (cheap upper bound).
        ex, ey = sx + length * ch, sy + length * sh
        if abs(k) > 1e-12:
            ccx, ccy = sx - sh / k, sy + ch / k
            rad = 1.0 / abs(k)
            bx0, bx1, by0, by1 = ccx - rad, ccx + rad, ccy - rad, ccy + rad
        else:
            bx0, bx1, by0, by1 = min(sx, ex), max(sx, ex), min(sy, ey), max(sy, ey)
        i0 = max(0, int((bx0 - reach - x0) / res))
        i1 = min(gw - 1, int((bx1 + reach - x0) / res) + 1)
        j0 = max(0, int((by0 - reach - y0) / res))
        j1 = min(gh - 1, int((by1 + reach - y0) / res) + 1)
        for jy in range(j0, j1 + 1):
            py = y0 + (jy + 0.5) * res
            for ix in range(i0, i1 + 1):
                px = x0 + (ix + 0.5) * res
                if abs(k) < 1e-12:
                    rx, ry = px - sx, py - sy
                    s = rx * ch + ry * sh
                    lat = -rx * sh + ry * ch
                else:
                    vx, vy = px - ccx, py - ccy
                    theta = math.atan2(k * vx, -k * vy)
                    a = (theta - h + math.pi) % (2 * math.pi) - math.pi
                    s = a / k
                    dist = math.sqrt(vx * vx + vy * vy)
                    lat = 1.0 / k - dist if k > 0 else 1.0 / k + dist
                if s < 0.0 or s > length or abs(lat) >= reach:
                    continue
                alat = abs(lat)
                sr = s + s_off
                if alat < hw:
                    if conn > 0.5:
                        m = G_JUNCTION
                    else:
                        m = G_ROAD
                        to_end = min(sr, road_len - sr)
                        at_end = road_len - sr < sr
                        if 0.3 < to_end < 3.2:
                            if ((lat + 20.0) / 1.0) % 1.0 < 0.5:
                                m = G_CROSSWALK
                        elif 3.5 < to_end < 3.9 and ((lat > 0) == at_end):
                            m = G_LINE  # stop line across the lane that enters the junction
                        elif to_end >= 3.9:
                            if alat < 0.075 and (sr / 6.0) % 1.0 < 0.5:
                                m = G_LINE  # dashed centre line
                            elif hw - 0.35 < alat < hw - 0.2:
                                m = G_LINE  # solid edge line
                elif alat < hw + 0.25:
                    m = G_CURB
                else:
                    m = G_SIDEWALK
                if m > raster[jy, ix]:
                    raster[jy, ix] = m


def build_ground(town: Town) -> tuple[np.ndarray, np.ndarray]:
    """(raster (H, W) uint8 material ids, (x0, y0, res) float64)."""
    xmin, ymin, xmax, ymax = town.bounds
    x0, y0 = xmin - MARGIN, ymin - MARGIN
    gw = int(math.ceil((xmax - xmin + 2 * MARGIN) / RES))
    gh = int(math.ceil((ymax - ymin + 2 * MARGIN) / RES))
    rows = []
    for road in town.roads:
        s = 0.0
        for seg in road.segments:
            rows.append((seg.x, seg.y, seg.hdg, seg.length, seg.curvature, s, road.length,
                         1.0 if road.junction >= 0 else 0.0))
            s += seg.length
    raster = np.zeros((gh, gw), np.uint8)
    _rasterize(np.array(rows, np.float64), raster, x0, y0, RES, HALF_ROAD, SIDEWALK)
    return raster, np.array([x0, y0, RES], np.float64)


def material_at(raster: np.ndarray, origin: np.ndarray, x: float | np.ndarray, y: float | np.ndarray):
    """Ground material at world points (grass outside the raster)."""
    ix = np.floor((np.asarray(x) - origin[0]) / origin[2]).astype(int)
    iy = np.floor((np.asarray(y) - origin[1]) / origin[2]).astype(int)
    inside = (ix >= 0) & (iy >= 0) & (ix < raster.shape[1]) & (iy < raster.shape[0])
    out = np.zeros(ix.shape, np.uint8)
    out[inside] = raster[iy[inside], ix[inside]]
    return out
