"""Materials of the procedural world: ids, their semantic tags, and the procedural textures.

Every texture is a pure function of the surface point (world x, y for static things, the actor's own
frame for moving ones) and of fixed per-object parameters, so the rgb "engine look" is a deterministic
function of the geometry: warping it by the exact flow reproduces the next frame, and a model can
learn it. Detail comes from one tileable value-noise table (Perlin-style lattice noise, bilinear;
Perlin, "An image synthesizer", SIGGRAPH 1985) sampled at several scales.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from carla_bridge.core.labels import TAG

# Ground materials (values of the ground raster; order = priority when road bands overlap).
G_GRASS, G_SIDEWALK, G_CURB, G_JUNCTION, G_ROAD, G_LINE, G_CROSSWALK = range(7)
GROUND_LABELS = np.array([TAG["Terrain"], TAG["Sidewalks"], TAG["Sidewalks"], TAG["Roads"], TAG["Roads"],
                          TAG["RoadLines"], TAG["RoadLines"]], dtype=np.uint8)

# Solid (prism) materials.
(M_BUILDING, M_TRUNK, M_CANOPY, M_HEDGE, M_POLE, M_TLIGHT, M_SIGN, M_FENCE, M_WALL, M_CAR_BODY,
 M_CAR_CABIN, M_PEDESTRIAN, M_PROP) = range(13)

NOISE_SIZE = 256


def make_noise_table(seed: int = 1234) -> np.ndarray:
    """(256, 256) float32 tileable fractal value noise in [0, 1] (same for every town)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((NOISE_SIZE, NOISE_SIZE), np.float64)
    amp, total = 1.0, 0.0
    for period in (4, 8, 16, 32, 64, 128):
        lattice = rng.random((period, period))
        t = np.arange(NOISE_SIZE) * period / NOISE_SIZE
        i0 = np.floor(t).astype(int)
        f = t - i0
        f = f * f * (3 - 2 * f)  # smoothstep fade
        i1 = (i0 + 1) % period
        rows = lattice[i0][:, i0] * (1 - f)[None, :] + lattice[i0][:, i1] * f[None, :]
        rows1 = lattice[i1][:, i0] * (1 - f)[None, :] + lattice[i1][:, i1] * f[None, :]
        out += amp * (rows * (1 - f)[:, None] + rows1 * f[:, None])
        total += amp
        amp *= 0.6
    out /= total
    out = (out - out.min()) / (out.max() - out.min())
    return out.astype(np.float32)


@njit(cache=True, fastmath=True, inline="always")
def noise(table, u, v):
    """Bilinear lookup of the tileable noise table at texel coordinates (u, v)."""
    fu, fv = np.floor(u), np.floor(v)
    iu, iv = int(fu) & 255, int(fv) & 255
    au, av = u - fu, v - fv
    iu1, iv1 = (iu + 1) & 255, (iv + 1) & 255
    a = table[iv, iu] * (1 - au) + table[iv, iu1] * au
    b = table[iv1, iu] * (1 - au) + table[iv1, iu1] * au
    return a * (1 - av) + b * av


@njit(cache=True, fastmath=True, inline="always")
def hash01(a, b, c):
    """A deterministic pseudo-random number in [0, 1) from three integers (integer hash)."""
    h = (a * 73856093) ^ (b * 19349663) ^ (c * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFF) / 65536.0


@njit(cache=True, fastmath=True)
def ground_albedo(m, x, y, table, wet):
    """Albedo (r, g, b) of ground material m at world (x, y)."""
    fine = noise(table, x * 23.0, y * 23.0)
    if m == G_ROAD or m == G_JUNCTION:
        patch = noise(table, x * 0.7 + 31.0, y * 0.7)
        g = 0.24 + 0.08 * fine + 0.06 * patch
        if m == G_JUNCTION:
            g -= 0.02
        crack = noise(table, x * 9.0, y * 9.0 + 77.0)
        if abs(crack - 0.5) < 0.006 and patch > 0.55:
            g *= 0.55
        g *= 1.0 - 0.45 * wet
        return g, g * 0.98, g * 1.02
    if m == G_LINE or m == G_CROSSWALK:
        wear = noise(table, x * 2.0, y * 2.0 + 13.0)
        g = 0.82 + 0.1 * fine
        if wear < 0.3:
            g = 0.5
        return g, g, g * 0.95
    if m == G_SIDEWALK:
        tu, tv = x / 0.6, y / 0.6
        fu, fv = np.floor(tu), np.floor(tv)
        if tu - fu < 0.06 or tv - fv < 0.06:
            g = 0.38
        else:
            g = 0.56 + 0.1 * hash01(int(fu), int(fv), 5) + 0.05 * fine
        g *= 1.0 - 0.35 * wet
        return g, g * 0.97, g * 0.92
    if m == G_CURB:
        g = 0.68 + 0.08 * fine
        return g, g, g * 0.97
    big = noise(table, x * 0.4, y * 0.4 + 101.0)
    med = noise(table, x * 4.0 + 50.0, y * 4.0)
    k = 0.55 + 0.45 * med + 0.15 * fine
    return (0.20 + 0.18 * big) * k, (0.38 + 0.06 * big) * k, (0.10 + 0.02 * big) * k


@njit(cache=True, fastmath=True)
def solid_albedo(mat, u, z, face, base_r, base_g, base_b, param, table, z0, z1):
    """Albedo of a solid at facade coordinate u (along the face), height z, face (0/1 side, 2 top, 3 bottom)."""
    if mat == M_BUILDING:
        grain = 0.88 + 0.2 * noise(table, u * 4.0, z * 4.0 + param * 97.0)
        if face == 2:
            g = 0.3 * grain
            return g, g * 0.97, g * 0.95
        if z > z1 - 0.6:  # cornice
            return base_r * 0.7, base_g * 0.7, base_b * 0.7
        floor_h = 3.0 + 0.8 * param
        win_w = 2.2 + 1.8 * ((param * 7.31) % 1.0)
        fz = z / floor_h
        fu = u / win_w
        iz, iu = int(np.floor(fz)), int(np.floor(fu))
        rz, ru = fz - iz, fu - np.floor(fu)
        if z < 3.4 and ((param * 13.7) % 1.0) < 0.5:  # shop front
            if 0.12 < ru < 0.92 and z > 0.5 and z < 2.9:
                return 0.10, 0.13, 0.16
        elif iz >= 1 or z > 1.0:
            if 0.25 < rz < 0.8 and 0.2 < ru < 0.8:
                lit = hash01(iz, iu, int(param * 1000.0))
                refl = 0.1 + 0.25 * (rz - 0.25)
                if lit > 0.9:
                    return 0.75, 0.65, 0.4
                return 0.10 + refl, 0.14 + refl, 0.2 + refl * 1.2
            if 0.18 < rz < 0.85 and 0.14 < ru < 0.86:  # window frame
                return 0.8 * grain, 0.8 * grain, 0.78 * grain
        return base_r * grain, base_g * grain, base_b * grain
    if mat == M_CANOPY or mat == M_HEDGE:
        s = 2.5 if mat == M_CANOPY else 6.0
        n1 = noise(table, u * s, z * s + param * 50.0)
        n2 = noise(table, u * s * 4.0 + 9.0, z * s * 4.0)
        k = 0.35 + 0.8 * n1 * (0.6 + 0.6 * n2)
        return base_r * k, base_g * k, base_b * k
    if mat == M_TRUNK:
        k = 0.7 + 0.5 * noise(table, u * 12.0, z * 2.0)
        return base_r * k, base_g * k, base_b * k
    if mat == M_FENCE:
        if (u / 0.14) % 1.0 < 0.6 or z > z1 - 0.1:
            return base_r, base_g, base_b
        return base_r * 0.45, base_g * 0.45, base_b * 0.45
    if mat == M_WALL:
        row = int(np.floor(z / 0.25))
        bu = u / 0.5 + 0.5 * (row & 1)
        if z / 0.25 - row < 0.1 or bu - np.floor(bu) < 0.05:
            return 0.7, 0.68, 0.64
        k = 0.85 + 0.3 * hash01(row, int(np.floor(bu)), 3)
        return base_r * k, base_g * k, base_b * k
    if mat == M_SIGN:
        if abs(u) > 0.28 or z < z0 + 0.06 or z > z1 - 0.06:
            return 0.9, 0.9, 0.9
        return base_r, base_g, base_b
    if mat == M_TLIGHT:
        h = (z - z0) / (z1 - z0)
        for k in range(3):
            c = (k + 0.5) / 3.0
            if (h - c) * (h - c) * 9.0 * (z1 - z0) * (z1 - z0) + u * u < 0.012:
                on = int(param * 3.0) == k
                f = 1.0 if on else 0.25
                if k == 2:
                    return 0.9 * f, 0.1 * f, 0.05 * f
                if k == 1:
                    return 0.9 * f, 0.7 * f, 0.1 * f
                return 0.1 * f, 0.9 * f, 0.3 * f
        return 0.08, 0.08, 0.07
    if mat == M_CAR_BODY:
        if z < 0.42:
            return 0.05, 0.05, 0.05
        if face == 0 and z > 0.55 and z < 0.78 and abs(u) > 0.45:  # lamps on the front/back faces
            if param > 0.0:
                return 0.95, 0.92, 0.8
            return 0.7, 0.05, 0.05
        k = 0.9 + 0.1 * noise(table, u * 8.0, z * 8.0)
        return base_r * k, base_g * k, base_b * k
    if mat == M_CAR_CABIN:
        if face == 2:
            return base_r, base_g, base_b
        if z > z0 + 0.06 and z < z1 - 0.06:
            return 0.06, 0.08, 0.1
        return base_r, base_g, base_b
    if mat == M_PEDESTRIAN:
        if z > z1 - 0.28:
            return 0.55, 0.4, 0.3
        if z > 0.85:
            return base_r, base_g, base_b
        return 0.12 + 0.2 * param, 0.12 + 0.2 * param, 0.2 + 0.2 * param
    k = 0.85 + 0.3 * noise(table, u * 6.0, z * 6.0)  # poles, props
    return base_r * k, base_g * k, base_b * k
