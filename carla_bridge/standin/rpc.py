"""msgpack-rpc framing as rpclib (the library CARLA's client and server use) speaks it.

A request is ``[0, msgid, method, params]`` and is answered with ``[1, msgid, error, result]``; a
notification ``[2, method, params]`` gets no answer. One thread serves each client connection, so a
slow call on one connection (a tick that renders) never blocks another's (the Traffic Manager's).
This module knows nothing about CARLA: it hands ``(method, params)`` to a dispatch function.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import msgpack

from carla_bridge.standin.tcp import TcpServer, close_socket

log = logging.getLogger("carla_bridge.standin.rpc")

REQUEST, RESPONSE, NOTIFY = 0, 1, 2

Dispatch = Callable[[str, list], Any]


class RpcServer(TcpServer):
    """Serve msgpack-rpc on ``host:port`` in background threads until :meth:`stop`."""

    name = "rpc"

    def __init__(self, host: str, port: int, dispatch: Dispatch) -> None:
        super().__init__(host, port)
        self._dispatch = dispatch
        self._connections: set[socket.socket] = set()

    def _take_open_sockets(self) -> set[socket.socket]:
        connections, self._connections = self._connections, set()
        return connections

    def _connected(self, conn: socket.socket, address: tuple) -> None:
        conn.settimeout(None)  # a client may sit idle between calls for as long as it likes
        with self._lock:
            self._connections.add(conn)
        self._serve(conn, address)

    def _serve(self, conn: socket.socket, address: tuple) -> None:
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=64 << 20)
        log.debug("rpc client connected from %s:%s", *address)
        try:
            while not self._stopping.is_set():
                data = conn.recv(1 << 16)
                if not data:
                    break
                unpacker.feed(data)
                for message in unpacker:
                    reply = self._handle(message)
                    if reply is not None:
                        conn.sendall(reply)
        except OSError:
            pass  # the client went away or stop() closed the socket
        finally:
            with self._lock:
                self._connections.discard(conn)
            close_socket(conn)
            log.debug("rpc client %s:%s disconnected", *address)

    def _handle(self, message: Any) -> bytes | None:
        if not isinstance(message, list) or not message:
            log.error("malformed msgpack-rpc message dropped: %r", message)
            return None
        if message[0] == NOTIFY and len(message) == 3:
            self._call(message[1], message[2])
            return None
        if message[0] != REQUEST or len(message) != 4:
            log.error("unexpected msgpack-rpc message dropped: %r", message)
            return None
        _, msgid, method, params = message
        error, result = self._call(method, params)
        return msgpack.packb([RESPONSE, msgid, error, result], use_bin_type=True)

    def _call(self, method: str, params: list) -> tuple[Any, Any]:
        try:
            return None, self._dispatch(method, list(params))
        except Exception as error:  # a handler bug must answer, not kill the connection
            log.exception("rpc %s failed", method)
            return f"{method}: {type(error).__name__}: {error}", None
