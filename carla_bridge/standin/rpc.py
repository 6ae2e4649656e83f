"""msgpack-rpc framing as rpclib (the library CARLA's client and server use) speaks it.

A request is ``[0, msgid, method, params]`` and is answered with ``[1, msgid, error, result]``; a
notification ``[2, method, params]`` gets no answer. One thread serves each client connection, so a
slow call on one connection (a tick that renders) never blocks another's (the Traffic Manager's).
This module knows nothing about CARLA: it hands ``(method, params)`` to a dispatch function.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import msgpack

log = logging.getLogger("carla_bridge.standin.rpc")

REQUEST, RESPONSE, NOTIFY = 0, 1, 2

Dispatch = Callable[[str, list], Any]


def make_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket; a port in use raises OSError naming host:port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror or error}") from error
    # The system's maximum, as rpclib (asio) listens: clients probe liveness with short-lived TCP
    # connections, and under load a backlog of 32 fills up, drops SYNs and makes probes time out.
    sock.listen(socket.SOMAXCONN)
    # accept() wakes up regularly so that stop() is noticed without closing the socket under it.
    sock.settimeout(0.2)
    return sock


class RpcServer:
    """Serve msgpack-rpc on ``host:port`` in background threads until :meth:`stop`."""

    def __init__(self, host: str, port: int, dispatch: Dispatch) -> None:
        self.host, self.port = host, port
        self._dispatch = dispatch
        self._listener = make_listener(host, port)
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, name="standin-rpc-accept", daemon=True)

    def start(self) -> RpcServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every client connection (clients then see the server gone)."""
        self._stopping.set()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            _close(conn)
        if self._thread.ident is not None:  # started: a server whose other port was in use never was
            self._thread.join(timeout=2.0)
        _close(self._listener)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(None)
            with self._lock:
                self._connections.add(conn)
            threading.Thread(
                target=self._serve, args=(conn, address), name=f"standin-rpc-{address[1]}", daemon=True
            ).start()

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
            _close(conn)
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


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
