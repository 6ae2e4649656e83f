"""msgpack-rpc framing as rpclib (the library CARLA's client and server use) speaks it.

A request is ``[0, msgid, method, params]`` and is answered with ``[1, msgid, error, result]``; a
notification ``[2, method, params]`` gets no answer. One thread serves each client connection, so a
slow call on one connection (a tick that renders) never blocks another's (the Traffic Manager's).
This module knows nothing about CARLA: it hands ``(method, params)`` to a dispatch function.

Messages are checked here, where they enter: a request whose method is no string or whose params are
no list is answered with an error; bytes that are no msgpack, or a message that is no request or
notification, end the connection (nothing in it can be answered). The log shows wire values shortened.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import msgpack

from carla_bridge.standin.logtext import shorten
from carla_bridge.standin.tcp import TcpServer

log = logging.getLogger("carla_bridge.standin.rpc")

REQUEST, RESPONSE, NOTIFY = 0, 1, 2
MAX_MESSAGE_BYTES = 64 << 20  # the largest message a CARLA client sends (a spawn batch) is a few MB


class ProtocolViolation(ValueError):
    """The peer does not speak msgpack-rpc: its connection is closed."""

Dispatch = Callable[[str, list], Any]


class RpcServer(TcpServer):
    """Serve msgpack-rpc on ``host:port`` in background threads until :meth:`stop`."""

    name = "rpc"
    connection_timeout = None  # a client may sit idle between calls for as long as it likes

    def __init__(self, host: str, port: int, dispatch: Dispatch) -> None:
        super().__init__(host, port)
        self._dispatch = dispatch

    def _connected(self, conn: socket.socket, address: tuple) -> None:
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=MAX_MESSAGE_BYTES)
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
        except (msgpack.UnpackException, ValueError) as error:  # FormatError, BufferFull, ProtocolViolation
            log.warning("rpc client %s:%s closed: it sent no msgpack-rpc (%s)", *address,
                        shorten(str(error) or type(error).__name__))
        except OSError:
            pass  # the client went away or stop() closed the socket
        finally:
            self._close(conn)
            log.debug("rpc client %s:%s disconnected", *address)

    def _handle(self, message: Any) -> bytes | None:
        """The reply to one message (None for a notification); raises ProtocolViolation."""
        if isinstance(message, list) and len(message) == 3 and message[0] == NOTIFY:
            _, method, params = message
            if isinstance(method, str) and isinstance(params, list):
                self._call(method, params)
                return None
        if not (isinstance(message, list) and len(message) == 4 and message[0] == REQUEST
                and isinstance(message[1], int)):
            raise ProtocolViolation(f"neither a request nor a notification: {shorten(message)}")
        _, msgid, method, params = message
        if not isinstance(method, str):
            error, result = f"the method name must be a string, got {shorten(method)}", None
            log.warning("rpc request refused: %s", error)
        elif not isinstance(params, list):
            error, result = f"{shorten(method)}: the parameters must be a list, got {shorten(params)}", None
            log.warning("rpc request refused: %s", error)
        else:
            error, result = self._call(method, params)
        return msgpack.packb([RESPONSE, msgid, error, result], use_bin_type=True)

    def _call(self, method: str, params: list) -> tuple[Any, Any]:
        try:
            return None, self._dispatch(method, params)
        except Exception as error:  # a handler bug must answer, not kill the connection
            log.exception("rpc %s failed", shorten(method))
            return f"{shorten(method)}: {type(error).__name__}: {shorten(str(error), 200)}", None
