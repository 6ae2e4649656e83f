"""Flow exactness of the procedural world, checked against an independent numpy reference.

(1) The renderer's flow equals a numpy back-projection of its depth (pinhole camera from the public ego
    pose and mount, the moving car's pose change from vehicle_state) into the previous camera.
(2) The flow maps each pixel onto the same surface point in the previous frame: world (or car-local)
    coordinates back-projected from depth t-1, warped by the flow, match those of frame t on
    non-occluded pixels (occlusion from depth reprojection), and warping rgb t-1 by the flow
    reproduces rgb t far better than not warping.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from carla_bridge.core.frames import Control, Transform
from carla_bridge.core.labels import TAG
from carla_bridge.procedural import ProceduralWorld, WorldConfig

W, H, FOV = 96, 48, 90.0


def camera(ego: Transform, mount: Transform) -> tuple[float, float, float, float]:
    yaw = math.radians(ego.yaw)
    c, s = math.cos(yaw), math.sin(yaw)
    return ego.x + mount.x * c - mount.y * s, ego.y + mount.x * s + mount.y * c, mount.z, yaw + math.radians(mount.yaw)


def rays():
    fx = W / (2 * math.tan(math.radians(FOV) / 2))
    u = np.arange(W) + 0.5
    v = np.arange(H) + 0.5
    xr = np.broadcast_to((u - W / 2) / fx, (H, W))
    sv = np.broadcast_to(((H / 2 - v) / fx)[:, None], (H, W))
    return fx, xr, sv


def backproject(depth, cam):
    _, xr, sv = rays()
    x, y, z, yaw = cam
    c, s = math.cos(yaw), math.sin(yaw)
    d = depth.astype(np.float64)
    return np.stack([x + d * (c - xr * s), y + d * (s + xr * c), z + sv * d], -1)


def project(points, cam):
    """Continuous pixel coordinates (u, v) and forward depth of world points in camera cam."""
    fx, _, _ = rays()
    x, y, z, yaw = cam
    c, s = math.cos(yaw), math.sin(yaw)
    rx, ry = points[..., 0] - x, points[..., 1] - y
    fwd, lat, up = rx * c + ry * s, -rx * s + ry * c, points[..., 2] - z
    return W / 2 + fx * lat / fwd, H / 2 - fx * up / fwd, fwd


def to_local(points, pose):
    x, y, yaw = pose
    c, s = math.cos(yaw), math.sin(yaw)
    rx, ry = points[..., 0] - x, points[..., 1] - y
    return np.stack([rx * c + ry * s, -rx * s + ry * c, points[..., 2]], -1)


def to_world(local, pose):
    x, y, yaw = pose
    c, s = math.cos(yaw), math.sin(yaw)
    return np.stack([x + local[..., 0] * c - local[..., 1] * s, y + local[..., 0] * s + local[..., 1] * c,
                     local[..., 2]], -1)


def bilinear(image, fx_, fy_):
    """Sample image (H, W, C) at index coordinates (x, y) (border clamp, align_corners=True)."""
    x = np.clip(fx_, 0, W - 1)
    y = np.clip(fy_, 0, H - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, W - 1), np.minimum(y0 + 1, H - 1)
    ax, ay = (x - x0)[..., None], (y - y0)[..., None]
    top = image[y0, x0] * (1 - ax) + image[y0, x1] * ax
    bot = image[y1, x0] * (1 - ax) + image[y1, x1] * ax
    return top * (1 - ay) + bot * ay


def pose_of(state):
    t = state.transform
    return t.x, t.y, math.radians(t.yaw)


def check_flow(world, prev_frame, frame, car_id=None, car_prev=None, car_now=None):
    mount = world.config.camera
    cam_prev, cam_now = camera(prev_frame.ego.transform, mount), camera(frame.ego.transform, mount)
    points = backproject(frame.depth, cam_now)
    moved = points.copy()
    sky = frame.labels == TAG["Sky"]
    car = frame.labels == TAG["Car"]
    if car_id is not None:
        moved[car] = to_world(to_local(points[car], car_now), car_prev)
    u, v, fwd_prev = project(moved, cam_prev)
    _, xr, sv = rays()
    if sky.any():  # directions at infinity: rotation only
        c, s = math.cos(cam_now[3]), math.sin(cam_now[3])
        far = np.stack([cam_prev[0] + 1e7 * (c - xr * s), cam_prev[1] + 1e7 * (s + xr * c),
                        cam_prev[2] + 1e7 * sv], -1)
        us, vs, _ = project(far, cam_prev)
        u, v = np.where(sky, us, u), np.where(sky, vs, v)
    ref = np.stack([u - (np.arange(W) + 0.5)[None, :], v - (np.arange(H) + 0.5)[:, None]], -1)
    err = np.abs(frame.flow - ref).max()
    assert err < 2e-3, f"flow differs from the numpy reference by {err:.5f} px"
    assert np.abs(frame.flow).max() > 0.5, "the scene should move"

    # (2) Same surface point: warp frame t-1's coordinates by the flow.
    tx = np.arange(W)[None, :] + frame.flow[..., 0]
    ty = np.arange(H)[:, None] + frame.flow[..., 1]
    inside = (tx >= 0) & (tx <= W - 1) & (ty >= 0) & (ty <= H - 1)
    prev_points = backproject(prev_frame.depth, cam_prev)
    if car_id is not None:  # compare moving-car pixels in the car's own frame
        prev_car = prev_frame.labels == TAG["Car"]
        prev_points[prev_car] = to_world(to_local(prev_points[prev_car], car_prev), car_now)
    warped = bilinear(prev_points, tx, ty)
    # Non-occluded: the four pixels the bilinear warp reads show the same class at the depth the
    # moved point must have in frame t-1 (depth reprojection test).
    x0, y0 = np.clip(np.floor(tx).astype(int), 0, W - 1), np.clip(np.floor(ty).astype(int), 0, H - 1)
    x1, y1 = np.minimum(x0 + 1, W - 1), np.minimum(y0 + 1, H - 1)
    visible = inside & ~sky
    for yy, xx in ((y0, x0), (y0, x1), (y1, x0), (y1, x1)):
        visible &= prev_frame.labels[yy, xx] == frame.labels
        visible &= np.abs(prev_frame.depth[yy, xx] - fwd_prev) < 0.1 * fwd_prev
    assert visible.mean() > 0.4, f"only {visible.mean():.0%} of the pixels are comparable"
    if car_id is not None:
        assert (visible & car).sum() > 20, "the moving car should be visible in both frames"
    dist = np.linalg.norm(warped - points, axis=-1)[visible]
    rel = dist / frame.depth[visible]
    assert np.median(rel) < 1e-3 and np.percentile(rel, 95) < 1e-2, (np.median(rel), np.percentile(rel, 95))

    # (3) rgb: warping by the flow beats not warping by far on the comparable pixels that move.
    rgb_prev, rgb = prev_frame.rgb.astype(np.float64), frame.rgb.astype(np.float64)
    warped_rgb = bilinear(rgb_prev, tx, ty)
    moving = visible & (np.linalg.norm(frame.flow, axis=-1) > 0.5)
    assert moving.sum() > 20
    err_flow = np.abs(warped_rgb - rgb)[moving].mean()
    err_still = np.abs(rgb_prev - rgb)[moving].mean()
    assert err_flow < 8.0, (err_flow, err_still)
    if err_still > 5.0:  # (a uniformly painted car body looks the same wherever it is)
        assert err_flow < 0.5 * err_still, (err_flow, err_still)
    return err_flow, err_still


@pytest.fixture(scope="module")
def world():
    return ProceduralWorld(WorldConfig(width=W, height=H, fov=FOV, seed=1, n_vehicles=0, n_pedestrians=0))


def test_flow_exact_while_ego_turns(world):
    world.reset()
    for _ in range(25):
        world.step(Control(throttle=0.7))
    prev = world.step(Control(throttle=0.3, steer=0.5))
    frame = world.step(Control(throttle=0.3, steer=0.5))
    assert abs(frame.ego.transform.yaw - prev.ego.transform.yaw) > 0.5
    check_flow(world, prev, frame)


def test_flow_exact_for_a_moving_car(world):
    world.reset()
    ego = world.vehicle_state(world.ego_id).transform
    yaw = math.radians(ego.yaw)
    spot = Transform(ego.x + 11 * math.cos(yaw) + 3 * math.sin(yaw), ego.y + 11 * math.sin(yaw) - 3 * math.cos(yaw),
                     0.0, 0.0, ego.yaw + 70.0, 0.0)
    car = world.spawn_vehicle(spot)
    world.apply_vehicle_control(car, Control(throttle=1.0, steer=-0.3))
    for _ in range(12):
        world.step(Control(brake=1.0))
    prev = world.step(Control(brake=1.0))
    car_prev = pose_of(world.vehicle_state(car))
    frame = world.step(Control(brake=1.0))
    car_now = pose_of(world.vehicle_state(car))
    assert math.hypot(car_now[0] - car_prev[0], car_now[1] - car_prev[1]) > 0.05, "the car should move"
    check_flow(world, prev, frame, car_id=car, car_prev=car_prev, car_now=car_now)
    world.destroy_vehicle(car)


def test_cut_frames_have_zero_flow(world):
    frame = world.reset()
    assert frame.cut and not frame.flow.any()
    world.step(Control(throttle=1.0))
    frame = world.respawn()
    assert frame.cut and not frame.flow.any()
