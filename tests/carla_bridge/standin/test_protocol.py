"""CARLA 0.9.16 wire encodings (carla_bridge.standin.protocol): payload layouts and RPC values."""

from __future__ import annotations

import struct

from carla_bridge.core.frames import Control, Transform
from carla_bridge.standin import protocol


def test_image_and_episode_state_layouts():
    pose = Transform(1, 2, 3, 4, 5, 6)
    payload = protocol.image_payload(14, 42, 2.5, pose, 8, 4, 90.0, b"\0" * 128)
    assert struct.unpack_from("<QQd6f", payload) == (14, 42, 2.5, 1, 2, 3, 4, 5, 6)
    assert struct.unpack_from("<IIf", payload, 48) == (8, 4, 90.0) and len(payload) == 48 + 12 + 128
    actors = [protocol.ActorDynamics(1, pose),
              protocol.ActorDynamics(100, pose, (1.0, 0, 0), control=Control(throttle=0.5, steer=-0.25))]
    state = protocol.episode_state_payload(7, 0.35, 1, 0.0, 0.05, actors)
    assert len(state) == 48 + struct.calcsize("<Qdf3ii") + 2 * protocol.ACTOR_RECORD_BYTES and protocol.ACTOR_RECORD_BYTES == 119
    assert struct.unpack_from("<QQ", state) == (protocol.WORLD_OBSERVER, 7)
    record = 48 + struct.calcsize("<Qdf3ii") + 119
    assert struct.unpack_from("<IB", state, record) == (100, 1)
    throttle, steer, brake, hand_brake, reverse, manual, gear = struct.unpack_from("<3f3?i", state, record + 65)
    assert (throttle, steer, brake, reverse, gear) == (0.5, -0.25, 0.0, False, 1)


def test_control_from_rpc_clamps_like_carla():
    control = protocol.control_from_rpc([1.5, -2.0, 0.25, True, False, False, 0])
    assert control == Control(throttle=1.0, steer=-1.0, brake=0.25, hand_brake=True)
