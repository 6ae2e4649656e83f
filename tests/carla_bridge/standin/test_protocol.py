"""The stand-in's wire layer without the carla client: msgpack-rpc framing over a real socket, stream
tokens and the streaming server, payload layouts, attachment poses, weather mapping."""

from __future__ import annotations

import logging
import socket
import struct

import pytest

msgpack = pytest.importorskip("msgpack")

from carla_bridge.core.frames import Control, Transform  # noqa: E402
from carla_bridge.standin import protocol  # noqa: E402
from carla_bridge.standin.actors import compose  # noqa: E402
from carla_bridge.standin.rpc import RpcServer  # noqa: E402
from carla_bridge.standin.streaming import StreamServer, decode_token, encode_token  # noqa: E402
from carla_bridge.standin.weather import weather_index  # noqa: E402
from support.carla import free_port_pair  # noqa: E402


def _call(sock: socket.socket, unpacker, message: list):
    sock.sendall(msgpack.packb(message, use_bin_type=True))
    while True:
        for reply in unpacker:
            return reply
        data = sock.recv(1 << 16)
        assert data, "server closed the connection"
        unpacker.feed(data)


def test_rpc_framing_answers_requests_by_msgid_and_skips_notifications():
    calls = []

    def dispatch(method, params):
        calls.append((method, params))
        if method == "boom":
            raise RuntimeError("handler bug")
        return [[1, f"{method}:{params}"]]

    port, _ = free_port_pair()
    server = RpcServer("127.0.0.1", port, dispatch).start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            unpacker = msgpack.Unpacker(raw=False)
            sock.sendall(msgpack.packb([2, "note", [1]]))  # notification: no reply
            assert _call(sock, unpacker, [0, 7, "echo", [[False], 3]]) == [1, 7, None, [[1, "echo:[[False], 3]"]]]
            kind, msgid, error, result = _call(sock, unpacker, [0, 8, "boom", []])
            assert (kind, msgid, result) == (1, 8, None) and "handler bug" in error
        assert calls[0] == ("note", [1])
    finally:
        server.stop()


def test_token_layout_and_streaming_delivers_framed_payloads():
    token = encode_token(5, 2001)
    assert len(token) == 24 and struct.unpack_from("<IHBB", token) == (5, 2001, 1, 1)
    assert decode_token(token) == (5, 2001, "127.0.0.1")
    port, _ = free_port_pair()
    streams = StreamServer("127.0.0.1", port).start()
    try:
        streams.expect(5)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sub:
            sub.sendall(struct.pack("<I", 5))
            assert streams.wait_for_subscriber(5, timeout_s=5.0)
            assert streams.publish(5, b"hello") == 1 and streams.publish(6, b"nobody") == 0
            data = b""
            while len(data) < 9:
                data += sub.recv(64)
            assert data == struct.pack("<I", 5) + b"hello"
        assert not streams.wait_for_subscriber(9, timeout_s=0.01)  # never expected: no wait
    finally:
        streams.stop()


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


def test_attached_camera_pose_follows_parent_yaw():
    car = Transform(10.0, 20.0, 0.0, yaw=90.0)
    camera = compose(car, Transform(x=1.6, z=1.7))
    assert (camera.x, camera.y, camera.z, camera.yaw) == pytest.approx((10.0, 21.6, 1.7, 90.0))
    tilted = compose(Transform(yaw=30.0), Transform(x=1.0, yaw=15.0, pitch=-10.0))
    assert (tilted.yaw, tilted.pitch, tilted.roll) == pytest.approx((45.0, -10.0, 0.0), abs=1e-9)


@pytest.mark.parametrize("carla_preset, expected", [
    ([5.0, 0, 0, 10, -1, 45, 2, 0.75, 0.1, 0, 1, 0.03, 0.0331, 0], "ClearNoon"),
    ([5.0, 0, 0, 10, -1, 15, 2, 0.75, 0.1, 0, 1, 0.03, 0.0331, 0], "ClearSunset"),
    ([60.0, 0, 0, 10, -1, 45, 3, 0.75, 0.1, 0, 1, 0.03, 0.0331, 0], "CloudyNoon"),
    ([60.0, 0, 50, 10, -1, 45, 3, 0.75, 0.1, 50, 1, 0.03, 0.0331, 0], "WetCloudyNoon"),
])
def test_weather_maps_carla_presets_to_procedural_names(carla_preset, expected):
    names = ["ClearNoon", "ClearSunset", "CloudyNoon", "WetCloudyNoon", "FoggyMorning"]
    assert names[weather_index(carla_preset, names)] == expected


def test_unknown_rpc_is_logged_loudly_and_answered_with_an_error(caplog):
    from carla_bridge.standin.methods import MethodTable

    table = MethodTable(world=None)  # the unknown-method path touches no world
    with caplog.at_level(logging.ERROR, logger="carla_bridge.standin.methods"):
        reply = table("get_imaginary_thing", [[False], 1, 2])
    assert reply == [[0, ["CARLA stand-in: RPC 'get_imaginary_thing' is not implemented"]]]
    assert "UNKNOWN RPC 'get_imaginary_thing'" in caplog.text and table.unknown_calls == ["get_imaginary_thing"]
