"""Vehicles: kinematic bicycle model, collision with static solids, and the lane-following autopilot.

Kinematic bicycle (Rajamani, "Vehicle Dynamics and Control", 2nd ed., sec. 2.2, with the reference
point on the rear axle): yaw_rate = v / L * tan(delta). Positive steer turns right, which in CARLA's
left-handed frame makes the yaw grow. The autopilot is pure pursuit (Coulter, "Implementation of the
pure pursuit path tracking algorithm", CMU-RI-TR-92-01, 1992): delta = atan(2 L sin(alpha) / Ld) toward
the lane centre point Ld ahead, with a speed target that slows for curves, keeps a gap (bumper to
bumper) to the vehicle ahead on the same route, and stops where junctions.right_of_way says to wait.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from carla_bridge.core.frames import Control
from carla_bridge.procedural.kernel import KIND_CIRCLE, P_CX, P_CY, P_HX, P_HY, P_KIND, P_Z0, P_Z1
from carla_bridge.procedural.town import Town

MAX_STEER = math.radians(35.0)
ACCEL = 4.0  # m/s^2 at full throttle
BRAKE = 9.0  # m/s^2 at full brake
HAND_BRAKE = 6.0
MAX_REVERSE = 6.0
MAX_SPEED = 30.0
HEADWAY_S = 1.3  # the autopilot's time gap to the car ahead (and to a stop line)

# kind -> (length, width, wheelbase)
SIZES = {"car": (4.5, 1.9, 2.8), "truck": (7.2, 2.5, 4.5), "bus": (11.0, 2.6, 6.0)}


@dataclass
class Vehicle:
    id: int
    kind: str
    x: float
    y: float
    yaw: float  # radians
    color: tuple[float, float, float]
    speed: float = 0.0
    control: Control = field(default_factory=Control)  # as set by the caller
    applied: Control = field(default_factory=Control)  # as applied in the last tick (autopilot's)
    autopilot: bool = False
    cruise: float = 8.0
    prev: tuple[float, float, float] = (0.0, 0.0, 0.0)
    route: list[int] = field(default_factory=list)
    index: int = 0  # sample index on route[0]
    seed: int = 0
    holds: int = -1  # the junction this car may cross (junctions.right_of_way), -1 none
    waiting_since: int = -1  # the tick it began waiting at a junction's entry line, -1 not waiting

    def __post_init__(self) -> None:
        self.prev = (self.x, self.y, self.yaw)
        self.rng = np.random.default_rng([self.seed, self.id])

    @property
    def size(self) -> tuple[float, float, float]:
        return SIZES[self.kind]


@njit(cache=True)
def footprint_hits(SP, g_start, g_items, grid, x, y, yaw, hx, hy, out):
    """Ids of the ground-standing solids that the box footprint (centre x, y, yaw, half sizes)
    overlaps, written to ``out``; returns how many (at most len(out))."""
    n = 0
    gx0, gy0, cell, gnx, gny = grid[0], grid[1], grid[2], int(grid[3]), int(grid[4])
    c, s = math.cos(yaw), math.sin(yaw)
    ex, ey = hx * abs(c) + hy * abs(s), hx * abs(s) + hy * abs(c)
    i0, i1 = max(0, int((x - ex - gx0) // cell)), min(gnx - 1, int((x + ex - gx0) // cell))
    j0, j1 = max(0, int((y - ey - gy0) // cell)), min(gny - 1, int((y + ey - gy0) // cell))
    for j in range(j0, j1 + 1):
        for i in range(i0, i1 + 1):
            cid = j * gnx + i
            for q in range(g_start[cid], g_start[cid + 1]):
                k = g_items[q]
                if SP[k, P_Z0] > 1.4 or SP[k, P_Z1] < 0.2:
                    continue  # overhead (crowns, mast arms) or flat
                px, py = SP[k, P_CX], SP[k, P_CY]
                if SP[k, P_KIND] == KIND_CIRCLE:
                    lx = (px - x) * c + (py - y) * s
                    ly = -(px - x) * s + (py - y) * c
                    qx, qy = min(max(lx, -hx), hx), min(max(ly, -hy), hy)
                    if (lx - qx) ** 2 + (ly - qy) ** 2 < SP[k, P_HX] ** 2 and n < len(out):
                        out[n] = k
                        n += 1
                    continue
                c2, s2 = SP[k, 5], SP[k, 6]
                sep = False
                for axis in range(4):  # separating axis theorem for two oriented boxes
                    if axis == 0:
                        ax, ay = c, s
                    elif axis == 1:
                        ax, ay = -s, c
                    elif axis == 2:
                        ax, ay = c2, s2
                    else:
                        ax, ay = -s2, c2
                    ra = hx * abs(c * ax + s * ay) + hy * abs(-s * ax + c * ay)
                    rb = SP[k, P_HX] * abs(c2 * ax + s2 * ay) + SP[k, P_HY] * abs(-s2 * ax + c2 * ay)
                    if abs((px - x) * ax + (py - y) * ay) >= ra + rb:
                        sep = True
                        break
                if not sep and n < len(out):
                    out[n] = k
                    n += 1
    return n


def new_contacts(SP, grid, old: tuple, new: tuple, hx: float, hy: float) -> bool:
    """True when the footprint at ``new`` (x, y, yaw) touches a solid that it did not touch at ``old``
    (so a vehicle placed overlapping something can still back out of it, but never drive further in)."""
    buf = np.empty(32, np.int32)
    n = footprint_hits(SP, *grid, *new, hx, hy, buf)
    if n == 0:
        return False
    hit = set(buf[:n].tolist())
    m = footprint_hits(SP, *grid, *old, hx, hy, buf)
    return bool(hit - set(buf[:m].tolist()))


def integrate(v: Vehicle, control: Control, dt: float) -> tuple[float, float, float, float]:
    """One kinematic bicycle step; returns the new (x, y, yaw, speed) without applying it."""
    length, _, wheelbase = v.size
    speed = v.speed
    direction = -1.0 if control.reverse else 1.0
    drag = 0.1 * np.sign(speed) + 0.04 * speed
    speed += (direction * control.throttle * ACCEL - drag) * dt
    stop = control.brake * BRAKE + (HAND_BRAKE if control.hand_brake else 0.0)
    if stop > 0.0:
        speed = math.copysign(max(0.0, abs(speed) - stop * dt), speed)
    if control.throttle == 0.0 and abs(speed) < 0.05:
        speed = 0.0
    speed = min(MAX_SPEED, max(-MAX_REVERSE, speed))
    yaw_rate = speed / wheelbase * math.tan(control.steer * MAX_STEER)
    yaw_mid = v.yaw + 0.5 * yaw_rate * dt
    x = v.x + speed * math.cos(yaw_mid) * dt
    y = v.y + speed * math.sin(yaw_mid) * dt
    yaw = (v.yaw + yaw_rate * dt + math.pi) % (2 * math.pi) - math.pi
    return x, y, yaw, speed


def _localize(v: Vehicle, town: Town) -> None:
    """Snap the route to the lane under the vehicle and extend it by random successors."""
    fresh = not v.route
    if fresh:
        lane, idx = town.nearest_lane(v.x, v.y, v.yaw)
        v.route, v.index = [lane], idx
    lane = town.lanes[v.route[0]]
    lo, hi = max(0, v.index - 4), min(len(lane.s), v.index + 40)
    d2 = (lane.points[lo:hi, 0] - v.x) ** 2 + (lane.points[lo:hi, 1] - v.y) ** 2
    v.index = lo + int(np.argmin(d2))
    if d2.min() > 25.0 and not fresh:  # far off the lane (teleported): start over from the nearest lane
        v.route = []
        _localize(v, town)  # once: a vehicle far from every lane (off the road) heads for the nearest one
        return
    while v.index >= len(lane.s) - 1 and len(v.route) > 1:
        v.route.pop(0)
        lane = town.lanes[v.route[0]]
        d2 = (lane.points[:40, 0] - v.x) ** 2 + (lane.points[:40, 1] - v.y) ** 2
        v.index = int(np.argmin(d2))
    while len(v.route) < 4:
        succ = town.lanes[v.route[-1]].successors
        if v.kind != "car":  # trucks and buses: one of the other ways, each as likely
            succ = [lane for lane in succ if not _tight_right_turn(town.lanes[lane])] or succ
        v.route.append(int(succ[int(v.rng.integers(len(succ)))]))


def _tight_right_turn(lane) -> bool:
    """A junction's right turn (radius JUNCTION_HALF - LANE_WIDTH / 2 = 5.25 m; a positive curvature
    turns right in CARLA's left-handed frame). A truck or bus taking it, its body pivoting about its
    centre, sweeps over the opposite lane of the road it turns into, where cars wait for the junction
    (in long measured drives every remaining vehicle overlap involved one), so they go straight or left
    where they can."""
    return lane.connector and lane.segments[0].curvature > 0.0


def _route_point(v: Vehicle, town: Town, ahead: float) -> tuple[float, float, float]:
    """Lane centre point `ahead` metres along the route, and the largest curvature up to it."""
    lane = town.lanes[v.route[0]]
    target = lane.s[v.index] + ahead
    kmax = 0.0
    for lane_id in v.route:
        lane = town.lanes[lane_id]
        kmax = max(kmax, max(abs(seg.curvature) for seg in lane.segments))
        if target <= lane.length:
            i = min(len(lane.s) - 1, int(np.searchsorted(lane.s, target)))
            return float(lane.points[i, 0]), float(lane.points[i, 1]), kmax
        target -= lane.length
    return float(lane.points[-1, 0]), float(lane.points[-1, 1]), kmax


def route_gap(v: Vehicle, town: Town, occupancy: dict[int, list[tuple[float, int, float]]],
              horizon: float = 40.0) -> float:
    """Bumper-to-bumper distance along v's route to the nearest other vehicle ahead (inf if none
    within horizon). ``occupancy`` maps a lane to its (arc length, vehicle id, half length) entries; a
    bus is 11 m long, so the gap between centres alone would let a car behind one drive into it."""
    offset = -town.lanes[v.route[0]].s[v.index]
    for n, lane_id in enumerate(v.route):
        for s, other, half_length in occupancy.get(lane_id, ()):
            if other != v.id and (n > 0 or s + offset > 0.0):
                gap = s + offset
                if gap < horizon:
                    return gap - half_length - v.size[0] / 2.0
        offset += town.lanes[lane_id].length
        if offset > horizon:
            break
    return math.inf


def autopilot(v: Vehicle, town: Town, occupancy: dict, stop_in: float = math.inf) -> Control:
    """Pure-pursuit steering and a P speed controller toward a curve- and gap-limited target speed;
    ``stop_in`` is the distance from the car's front to a line it must stop at (a junction to wait for)."""
    _localize(v, town)
    _, _, wheelbase = v.size
    lookahead = min(14.0, max(4.5, 0.9 * abs(v.speed) + 3.0))
    tx, ty, kmax = _route_point(v, town, lookahead)
    alpha = math.atan2(ty - v.y, tx - v.x) - v.yaw
    alpha = (alpha + math.pi) % (2 * math.pi) - math.pi
    delta = math.atan2(2.0 * wheelbase * math.sin(alpha), lookahead)
    steer = float(np.clip(delta / MAX_STEER, -1.0, 1.0))
    _, _, kfar = _route_point(v, town, 22.0)
    target = v.cruise
    if max(kmax, kfar) > 1e-6:
        target = min(target, math.sqrt(2.2 / max(kmax, kfar)))
    gap = route_gap(v, town, occupancy)
    # Speed = distance / headway: slow down in proportion, standing 3 m behind a car, 1 m before a line.
    target = min(target, max(0.0, (gap - 3.0) / HEADWAY_S), max(0.0, (stop_in - 1.0) / HEADWAY_S))
    err = target - v.speed
    if target < 0.1 and v.speed < 0.5:
        return Control(throttle=0.0, steer=steer, brake=1.0)
    if err > -0.3:
        return Control(throttle=float(np.clip(0.15 + 0.45 * err, 0.0, 1.0)), steer=steer)
    return Control(throttle=0.0, steer=steer, brake=float(np.clip(-0.35 * err, 0.0, 1.0)))
