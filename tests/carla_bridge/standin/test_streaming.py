"""Stream tokens and the sensor stream server (carla_bridge.standin.streaming)."""

from __future__ import annotations

import socket
import struct

import pytest

pytest.importorskip("msgpack")  # the stand-in's servers come with the carla extra

from carla_bridge.standin.streaming import StreamServer, encode_token  # noqa: E402
from support.carla import free_port_pair  # noqa: E402


def decode_token(token: bytes) -> tuple[int, int, str]:
    """(stream_id, port, host) of a token: what the carla client reads from it."""
    stream_id, port, protocol, address_type, address = struct.unpack("<IHBB16s", token)
    assert (protocol, address_type) == (1, 1), "TCP over IPv4"
    return stream_id, port, socket.inet_ntoa(address[:4])


def test_token_layout_and_streaming_delivers_framed_payloads():
    token = encode_token(5, 2001)
    assert len(token) == 24 and struct.unpack_from("<IHBB", token) == (5, 2001, 1, 1)
    assert decode_token(token) == (5, 2001, "127.0.0.1")
    port, _ = free_port_pair()
    streams = StreamServer("127.0.0.1", port, exists=lambda stream_id: stream_id == 5).start()
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
