"""The proxy's msgpack-rpc connection to the real CARLA server: one per client connection, so the
client's calls reach the server in the order it sent them (rpclib answers one connection's calls in
order), and one client's slow ``tick_cue`` never holds up another's."""

from __future__ import annotations

import socket
from typing import Any

import msgpack

from carla_bridge.standin.rpc import MAX_MESSAGE_BYTES, REQUEST, RESPONSE

CONNECT_TIMEOUT_S = 5.0


class UpstreamGone(ConnectionError):
    """The real server closed the connection or cannot be reached. An OSError: the RPC server that
    catches it closes the client's connection, so the client sees what it would see of CARLA itself."""


class UpstreamRpc:
    """Blocking msgpack-rpc calls to ``host:port``; use from one thread at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.where = f"{host}:{port}"
        try:
            self._sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
        except OSError as error:
            raise UpstreamGone(f"cannot reach the CARLA server at {self.where}: {error}") from error
        self._sock.settimeout(None)  # a tick may take as long as the server takes; a dead one closes
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=MAX_MESSAGE_BYTES)
        self._msgid = 0

    def call(self, method: str, params: list) -> tuple[Any, Any]:
        """Send one request; returns the server's ``(error, result)`` as they came."""
        self._msgid += 1
        msgid = self._msgid
        try:
            self._sock.sendall(msgpack.packb([REQUEST, msgid, method, params], use_bin_type=True))
            while True:
                for message in self._unpacker:
                    if isinstance(message, list) and len(message) == 4 and message[:2] == [RESPONSE, msgid]:
                        return message[2], message[3]
                data = self._sock.recv(1 << 16)
                if not data:
                    raise UpstreamGone(f"the CARLA server at {self.where} closed the connection")
                self._unpacker.feed(data)
        except UpstreamGone:
            raise
        except OSError as error:
            raise UpstreamGone(f"the CARLA server at {self.where} is gone: {error}") from error

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
