"""The proxy's streaming port: every subscription is relayed byte for byte from the real server's
stream of the same id, except the streams of the neural cameras, which the proxy publishes itself.

Stream ids pass unchanged; only the tokens that name them are rewritten (tokens.py) to point at the
proxy, which remembers the real server's streaming port of each id it rewrote.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Callable

from carla_bridge.standin.streaming import StreamServer
from carla_bridge.standin.tcp import close_socket

log = logging.getLogger("carla_bridge.proxy.streams")

_SIZE = struct.Struct("<I")


def subscribe_upstream(host: str, port: int, stream_id: int) -> socket.socket:
    """A connection to the real server's stream ``stream_id`` (the client's side of the protocol)."""
    sock = socket.create_connection((host, port), timeout=5.0)
    sock.settimeout(None)  # a sensor may stay quiet for as long as the world is paused
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(_SIZE.pack(stream_id))
    return sock


def _read_exactly(sock: socket.socket, count: int) -> bytes | None:
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


class UpstreamStream:
    """Reads one stream of the real server in a thread of its own, handing each payload to
    ``on_payload``; ends when the server closes the stream (its sensor destroyed) or on close()."""

    def __init__(self, host: str, port: int, stream_id: int, on_payload: Callable[[bytes], None]) -> None:
        self.stream_id = stream_id
        self._sock = subscribe_upstream(host, port, stream_id)
        self._on_payload = on_payload
        self._thread = threading.Thread(target=self._read, name=f"proxy-helper-{stream_id}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while (size := _read_exactly(self._sock, _SIZE.size)) is not None:
                payload = _read_exactly(self._sock, _SIZE.unpack(size)[0])
                if payload is None:
                    break
                self._on_payload(payload)
        except OSError:
            pass  # close() or the server went away
        except Exception:  # a render that fails must be seen, not end the stream silently
            log.exception("stream %d: payload not handled", self.stream_id)
        close_socket(self._sock)

    def close(self) -> None:
        close_socket(self._sock)


class ProxyStreamServer(StreamServer):
    """``publishes(stream_id)`` says which streams the proxy itself publishes (the neural cameras');
    every other subscription is relayed from ``upstream_host``."""

    name = "proxy-stream"

    def __init__(self, host: str, port: int, upstream_host: str, publishes: Callable[[int], bool]) -> None:
        super().__init__(host, port, exists=publishes)
        self.upstream_host = upstream_host
        self._upstream_ports: dict[int, int] = {}

    def relay_from(self, stream_id: int, upstream_port: int) -> None:
        """A token the proxy rewrote: stream ``stream_id`` lives on the real server's ``upstream_port``."""
        with self._lock:
            self._upstream_ports[stream_id] = upstream_port

    def _connected(self, conn: socket.socket, address: tuple) -> None:
        stream_id = self._read_stream_id(conn, address)
        if stream_id is None:
            return
        if self._exists(stream_id):
            self._subscribe(conn, address, stream_id)
            return
        with self._lock:
            upstream_port = self._upstream_ports.get(stream_id)
        if upstream_port is None:
            log.info("stream %d from %s:%s: no token of the server named it; closed", stream_id, *address)
            self._close(conn)
            return
        self._relay(conn, stream_id, upstream_port)

    def _relay(self, conn: socket.socket, stream_id: int, upstream_port: int) -> None:
        """Bytes from the server's stream to the client's connection, until either side closes."""
        try:
            upstream = subscribe_upstream(self.upstream_host, upstream_port, stream_id)
        except OSError as error:
            log.info("stream %d: the server's stream port %d is unreachable (%s)", stream_id, upstream_port, error)
            self._close(conn)
            return
        with self._lock:
            self._open.add(upstream)  # stop() closes it with the rest
        try:
            while data := upstream.recv(1 << 16):
                conn.sendall(data)
        except OSError:
            pass  # either side went away
        finally:
            self._close(upstream)
            self._close(conn)
