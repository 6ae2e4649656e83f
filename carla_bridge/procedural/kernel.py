"""The column ray caster that renders the G-buffer (labels, depth, flow, rgb) on the CPU with numba.

Why it is fast: the camera has no pitch or roll, so every vertical world edge projects to an image
column, and every solid is a vertical prism (box or cylinder footprint, z range). One 2D ray per
column walks a uniform grid (Amanatides & Woo, "A fast voxel traversal algorithm", Eurographics 1987),
each prism it meets is intersected analytically in 2D and fills the rows of its projected span in a
per-column depth buffer; the ground (z = 0) is analytic per pixel and reads a material raster.
Then each pixel is shaded from its hit: label, planar depth, rgb (texture + sun + sky light + fog)
and the exact backward flow: back-project, undo the hit object's motion over the last tick, project
into the previous camera (the flow of Sun et al.'s "Secrets of optical flow" convention used by
vid2vid: pixel + flow = where the surface point was in the previous frame).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from carla_bridge.procedural.materials import M_BUILDING, M_CAR_BODY, ground_albedo, noise, solid_albedo

# Prism table columns (float64, one row per solid).
(P_KIND, P_CX, P_CY, P_HX, P_HY, P_COS, P_SIN, P_Z0, P_Z1, P_LABEL, P_MAT, P_R, P_G, P_B, P_OBJ,
 P_PARAM) = range(16)
P_COLS = 16
KIND_BOX, KIND_CIRCLE = 0, 1
NEAR = 0.05
BIG = 1.0e9
SKY_DEPTH = 1000.0  # what CARLA's depth camera reports for the sky
SKY_LABEL = 11
W_SUN, W_SUNCOL, W_AMB, W_ZENITH, W_HORIZON, W_FOG, W_FOGD, W_CLOUD, W_WET = 0, 3, 6, 9, 12, 15, 18, 19, 20
W_SIZE = 24


@njit(cache=True, fastmath=True, inline="always")
def _intersect(P, k, ox, oy, dx, dy):
    """2D entry/exit ray parameters of prism k and the entry face (0: local x, 1: local y, 4: circle)."""
    if P[k, P_KIND] == KIND_CIRCLE:
        rx, ry = ox - P[k, P_CX], oy - P[k, P_CY]
        r = P[k, P_HX]
        a = dx * dx + dy * dy
        b = rx * dx + ry * dy
        c = rx * rx + ry * ry - r * r
        disc = b * b - a * c
        if disc < 0.0 or c <= 0.0:  # missed, or the camera stands inside (the ego's own body)
            return -1.0, -1.0, 0
        sq = math.sqrt(disc)
        return (-b - sq) / a, (-b + sq) / a, 4
    cs, sn = P[k, P_COS], P[k, P_SIN]
    rx, ry = ox - P[k, P_CX], oy - P[k, P_CY]
    lox, loy = rx * cs + ry * sn, -rx * sn + ry * cs
    ldx, ldy = dx * cs + dy * sn, -dx * sn + dy * cs
    hx, hy = P[k, P_HX], P[k, P_HY]
    if abs(lox) < hx and abs(loy) < hy:
        return -1.0, -1.0, 0
    if abs(ldx) < 1e-12:
        if abs(lox) > hx:
            return -1.0, -1.0, 0
        tx0, tx1 = -BIG, BIG
    else:
        t1, t2 = (-hx - lox) / ldx, (hx - lox) / ldx
        tx0, tx1 = min(t1, t2), max(t1, t2)
    if abs(ldy) < 1e-12:
        if abs(loy) > hy:
            return -1.0, -1.0, 0
        ty0, ty1 = -BIG, BIG
    else:
        t1, t2 = (-hy - loy) / ldy, (hy - loy) / ldy
        ty0, ty1 = min(t1, t2), max(t1, t2)
    if tx0 > ty0:
        return tx0, min(tx1, ty1), 0
    return ty0, min(tx1, ty1), 1


@njit(cache=True, fastmath=True, inline="always")
def _fill(P, k, pid, ox, oy, dx, dy, zc, fy, cy, H, zb, ids, faces):
    """Intersect prism k with the column's ray and write its nearer pixels into the column buffers."""
    tin, tout, face = _intersect(P, k, ox, oy, dx, dy)
    if tin < NEAR or tout < tin:
        return
    z0, z1 = P[k, P_Z0], P[k, P_Z1]
    top = min(cy - fy * (z1 - zc) / tin, cy - fy * (z1 - zc) / tout)
    bot = max(cy - fy * (z0 - zc) / tin, cy - fy * (z0 - zc) / tout)
    r0, r1 = max(0, int(top - 1.0)), min(H - 1, int(bot + 1.0))
    for v in range(r0, r1 + 1):
        sv = (cy - v - 0.5) / fy
        zin = zc + sv * tin
        if z0 <= zin <= z1:
            d, f = tin, face
        elif zin > z1 and sv < 0.0:
            d, f = (z1 - zc) / sv, 2
        elif zin < z0 and sv > 0.0:
            d, f = (z0 - zc) / sv, 3
        else:
            continue
        if d <= tout and d < zb[v]:
            zb[v], ids[v], faces[v] = d, pid, f


@njit(cache=True, fastmath=True, parallel=True)
def render_kernel(W, H, fx, cam, prev, SP, g_start, g_items, grid, DP, act_now, act_prev,
                  ground, graster, table, weather, ground_labels, max_dist, do_rgb, do_flow,
                  out_labels, out_depth, out_flow, out_rgb):
    """Render one camera. cam/prev: (x, y, z, yaw_rad, valid); grid: (x0, y0, cell, nx, ny);
    graster: (x0, y0, res); act_now/act_prev: (n, 3) actor poses (x, y, yaw_rad) now / a tick ago."""
    cx, cy, fy = W * 0.5, H * 0.5, fx
    ox, oy, zc = cam[0], cam[1], cam[2]
    cf, sf = math.cos(cam[3]), math.sin(cam[3])
    pcf, psf = math.cos(prev[3]), math.sin(prev[3])
    n_static, n_dyn = SP.shape[0], DP.shape[0]
    gx0, gy0, gcell, gnx, gny = grid[0], grid[1], grid[2], int(grid[3]), int(grid[4])
    n_chunks = min(W, 64)
    for ch in prange(n_chunks):
        stamp = np.full(max(n_static, 1), -1, np.int32)
        zb = np.empty(H, np.float64)
        ids = np.empty(H, np.int32)
        faces = np.empty(H, np.int32)
        for col in range((ch * W) // n_chunks, ((ch + 1) * W) // n_chunks):
            xr = (col + 0.5 - cx) / fx
            dx, dy = cf - xr * sf, sf + xr * cf  # forward + xr * right: parameter = planar depth
            for v in range(H):
                sv = (cy - v - 0.5) / fy
                if sv < -1e-9:
                    zb[v], ids[v] = zc / -sv, -1
                else:
                    zb[v], ids[v] = BIG, -2
            for k in range(n_dyn):
                _fill(DP, k, n_static + k, ox, oy, dx, dy, zc, fy, cy, H, zb, ids, faces)
            # Grid traversal, clipped to the grid's box.
            t0, t1 = 0.0, max_dist
            for axis in range(2):
                o = ox if axis == 0 else oy
                dd = dx if axis == 0 else dy
                lo = gx0 if axis == 0 else gy0
                hi = lo + gcell * (gnx if axis == 0 else gny)
                if abs(dd) < 1e-12:
                    if o < lo or o > hi:
                        t1 = -1.0
                else:
                    ta, tb = (lo - o) / dd, (hi - o) / dd
                    t0, t1 = max(t0, min(ta, tb)), min(t1, max(ta, tb))
            if t1 > t0 and n_static > 0:
                t = t0 + 1e-6
                ix = min(gnx - 1, max(0, int((ox + t * dx - gx0) / gcell)))
                iy = min(gny - 1, max(0, int((oy + t * dy - gy0) / gcell)))
                sx = 1 if dx > 0 else -1
                sy = 1 if dy > 0 else -1
                tmx = ((gx0 + (ix + (1 if sx > 0 else 0)) * gcell) - ox) / dx if abs(dx) > 1e-12 else BIG
                tmy = ((gy0 + (iy + (1 if sy > 0 else 0)) * gcell) - oy) / dy if abs(dy) > 1e-12 else BIG
                tdx = gcell / abs(dx) if abs(dx) > 1e-12 else BIG
                tdy = gcell / abs(dy) if abs(dy) > 1e-12 else BIG
                while 0 <= ix < gnx and 0 <= iy < gny and t <= t1:
                    c = iy * gnx + ix
                    for j in range(g_start[c], g_start[c + 1]):
                        k = g_items[j]
                        if stamp[k] != col:
                            stamp[k] = col
                            _fill(SP, k, k, ox, oy, dx, dy, zc, fy, cy, H, zb, ids, faces)
                    if tmx < tmy:
                        t, tmx, ix = tmx, tmx + tdx, ix + sx
                    else:
                        t, tmy, iy = tmy, tmy + tdy, iy + sy
            _shade_column(col, W, H, fx, cx, cy, ox, oy, zc, dx, dy, prev, pcf, psf, SP, DP, n_static,
                          act_now, act_prev, ground, graster, table, weather, ground_labels, do_rgb,
                          do_flow, zb, ids, faces, out_labels, out_depth, out_flow, out_rgb)


@njit(cache=True, fastmath=True)
def _shade_column(col, W, H, fx, cx, cy, ox, oy, zc, dx, dy, prev, pcf, psf, SP, DP, n_static,
                  act_now, act_prev, ground, graster, table, weather, ground_labels, do_rgb, do_flow,
                  zb, ids, faces, out_labels, out_depth, out_flow, out_rgb):
    gh, gw = ground.shape
    gx0, gy0, gres = graster[0], graster[1], graster[2]
    wet = weather[W_WET]
    for v in range(H):
        sv = (cy - v - 0.5) / fx
        pid, d = ids[v], zb[v]
        x, y, z = ox + d * dx, oy + d * dy, zc + sv * d
        px, py, pz = x, y, z  # the point a tick ago (static by default)
        nx, ny, nz = 0.0, 0.0, 1.0
        r = g = b = 0.0
        if pid == -2:
            out_labels[v, col] = SKY_LABEL
            out_depth[v, col] = SKY_DEPTH
        elif pid == -1:
            ix, iy = int((x - gx0) / gres), int((y - gy0) / gres)
            m = ground[iy, ix] if 0 <= ix < gw and 0 <= iy < gh else 0
            out_labels[v, col] = ground_labels[m]
            out_depth[v, col] = min(d, SKY_DEPTH)
            if do_rgb:
                r, g, b = ground_albedo(m, x, y, table, wet)
        else:
            P = SP if pid < n_static else DP
            k = pid if pid < n_static else pid - n_static
            out_labels[v, col] = np.uint8(P[k, P_LABEL])
            out_depth[v, col] = d
            obj = int(P[k, P_OBJ])
            lx, ly = x, y  # texture coordinates: the object's own frame for actors
            if obj >= 0:
                ax, ay, ayaw = act_now[obj, 0], act_now[obj, 1], act_now[obj, 2]
                ca, sa = math.cos(ayaw), math.sin(ayaw)
                lx = (x - ax) * ca + (y - ay) * sa
                ly = -(x - ax) * sa + (y - ay) * ca
                bx, by, byaw = act_prev[obj, 0], act_prev[obj, 1], act_prev[obj, 2]
                cb, sb = math.cos(byaw), math.sin(byaw)
                px, py = bx + lx * cb - ly * sb, by + lx * sb + ly * cb
            if do_rgb:
                f = faces[v]
                cs, sn = P[k, P_COS], P[k, P_SIN]
                rx, ry = x - P[k, P_CX], y - P[k, P_CY]
                qx, qy = rx * cs + ry * sn, -rx * sn + ry * cs  # prism-local point
                mat = int(P[k, P_MAT])
                param = P[k, P_PARAM]
                if f == 4:
                    rr = math.sqrt(rx * rx + ry * ry) + 1e-9
                    nx, ny, nz = rx / rr, ry / rr, 0.0
                    ang = math.atan2(qy, qx)
                    u = ang * P[k, P_HX]
                elif f == 0:
                    sgn = 1.0 if qx > 0 else -1.0
                    nx, ny, nz = sgn * cs, sgn * sn, 0.0
                    u = qy
                    if mat == M_BUILDING:
                        u = qy + P[k, P_HY]
                    if mat == M_CAR_BODY:
                        param = sgn
                elif f == 1:
                    sgn = 1.0 if qy > 0 else -1.0
                    nx, ny, nz = -sgn * sn, sgn * cs, 0.0
                    u = qx
                    if mat == M_BUILDING:
                        u = qx + P[k, P_HX]
                else:
                    nz = 1.0 if f == 2 else -1.0
                    u = qx
                r, g, b = solid_albedo(mat, u, z, f, P[k, P_R], P[k, P_G], P[k, P_B], param, table,
                                       P[k, P_Z0], P[k, P_Z1])
        if do_flow:
            u0, v0 = col + 0.5, v + 0.5
            if pid == -2:  # the sky is at infinity: only the camera's rotation moves it
                fwd = dx * pcf + dy * psf
                lat = -dx * psf + dy * pcf
                up = sv
            else:
                rx, ry = px - prev[0], py - prev[1]
                fwd = rx * pcf + ry * psf
                lat = -rx * psf + ry * pcf
                up = pz - prev[2]
            if prev[4] > 0.5 and fwd > 1e-4:
                out_flow[v, col, 0] = cx + fx * lat / fwd - u0
                out_flow[v, col, 1] = cy - fx * up / fwd - v0
            else:
                out_flow[v, col, 0] = 0.0
                out_flow[v, col, 1] = 0.0
        if do_rgb:
            _light(v, col, r, g, b, nx, ny, nz, pid, d, dx, dy, sv, table, weather, out_rgb)


@njit(cache=True, fastmath=True)
def _light(v, col, r, g, b, nx, ny, nz, pid, d, dx, dy, sv, table, weather, out_rgb):
    """Sun (Lambert) + sky light + distance fog; the sky itself is a gradient with a sun glow and clouds."""
    inv = 1.0 / math.sqrt(dx * dx + dy * dy + sv * sv)
    ux, uy, uz = dx * inv, dy * inv, sv * inv
    sunx, suny, sunz = weather[W_SUN], weather[W_SUN + 1], weather[W_SUN + 2]
    if pid == -2:
        e = math.sqrt(max(uz, 0.0))
        cr = weather[W_HORIZON] * (1 - e) + weather[W_ZENITH] * e
        cg = weather[W_HORIZON + 1] * (1 - e) + weather[W_ZENITH + 1] * e
        cb = weather[W_HORIZON + 2] * (1 - e) + weather[W_ZENITH + 2] * e
        glow = max(0.0, ux * sunx + uy * suny + uz * sunz) ** 24
        cr, cg, cb = cr + glow * weather[W_SUNCOL], cg + glow * weather[W_SUNCOL + 1], cb + glow * 0.6 * weather[W_SUNCOL + 2]
        if uz > 0.02:
            n = noise(table, ux / uz * 40.0, uy / uz * 40.0)
            cover = min(1.0, max(0.0, (n - 1.0 + weather[W_CLOUD]) * 3.0)) * min(1.0, uz * 8.0)
            cl = 0.75 + 0.2 * n
            cr, cg, cb = cr + (cl - cr) * cover, cg + (cl - cg) * cover, cb + (cl * 1.02 - cb) * cover
    else:
        lam = max(0.0, nx * sunx + ny * suny + nz * sunz)
        sky = 0.7 + 0.3 * nz
        cr = r * (weather[W_AMB] * sky + weather[W_SUNCOL] * lam)
        cg = g * (weather[W_AMB + 1] * sky + weather[W_SUNCOL + 1] * lam)
        cb = b * (weather[W_AMB + 2] * sky + weather[W_SUNCOL + 2] * lam)
        fog = 1.0 - math.exp(-weather[W_FOGD] * d)
        cr += (weather[W_FOG] - cr) * fog
        cg += (weather[W_FOG + 1] - cg) * fog
        cb += (weather[W_FOG + 2] - cb) * fog
    out_rgb[v, col, 0] = np.uint8(min(255.0, max(0.0, cr * 255.0)))
    out_rgb[v, col, 1] = np.uint8(min(255.0, max(0.0, cg * 255.0)))
    out_rgb[v, col, 2] = np.uint8(min(255.0, max(0.0, cb * 255.0)))
