"""msgpack-rpc framing (carla_bridge.standin.rpc) over a real socket."""

from __future__ import annotations

import socket

import pytest

msgpack = pytest.importorskip("msgpack")

from carla_bridge.standin.rpc import RpcServer  # noqa: E402
from support.carla import free_port_pair  # noqa: E402
from support.msgpack_rpc import RawRpc  # noqa: E402


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


def test_requests_are_checked_where_they_enter_and_a_non_msgpack_peer_is_closed():
    calls = []
    port, _ = free_port_pair()
    server = RpcServer("127.0.0.1", port, lambda method, params: calls.append(method) or [[1, "ok"]]).start()
    try:
        with RawRpc(port) as rpc:
            _, _, error, _ = rpc.request(["a", "list"], [])
            assert error == "the method name must be a string, got ['a', 'list']"
            _, _, error, _ = rpc.request("get", 5)
            assert error == "get: the parameters must be a list, got 5"
            assert rpc.request("version", [[False]])[2:] == [None, [[1, "ok"]]]
        for garbage in (b"\xc1", msgpack.packb("just a string"), msgpack.packb([0, "id", "m", []])):
            with RawRpc(port, timeout_s=3.0) as rpc:
                rpc.send(garbage)
                assert rpc.closed_by_server()
        assert calls == ["version"]
    finally:
        server.stop()
