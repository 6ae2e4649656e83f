"""Attachment poses of the stand-in's actors (carla_bridge.standin.actors)."""

from __future__ import annotations

import pytest

from carla_bridge.core.frames import Transform
from carla_bridge.standin.actors import compose


def test_attached_camera_pose_follows_parent_yaw():
    car = Transform(10.0, 20.0, 0.0, yaw=90.0)
    camera = compose(car, Transform(x=1.6, z=1.7))
    assert (camera.x, camera.y, camera.z, camera.yaw) == pytest.approx((10.0, 21.6, 1.7, 90.0))
    tilted = compose(Transform(yaw=30.0), Transform(x=1.0, yaw=15.0, pitch=-10.0))
    assert (tilted.yaw, tilted.pitch, tilted.roll) == pytest.approx((45.0, -10.0, 0.0), abs=1e-9)
