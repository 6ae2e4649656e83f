"""CARLA's streaming side channel: stream tokens and the TCP server that pushes sensor data.

A token (what ``get_sensor_token`` / ``get_episode_info`` return, msgpack bin of 24 bytes) tells the
client where to connect: ``<I stream_id, H port, B protocol (1 = TCP), B address type (1 = IPv4),
16-byte address>``. The client connects, sends the 4-byte little-endian stream id, then reads frames
``[u32 size][payload]`` (LibCarla/source/carla/streaming/detail/tcp). Subscriptions are asynchronous,
so a frame published before the client's subscription arrives is simply not seen: clients pair
frames by id with a timeout. A subscription to a stream that does not exist (a made-up id, a destroyed
sensor's) is closed at once: nothing would ever be published on it, and it would hold a descriptor.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Callable

from carla_bridge.standin.tcp import TcpServer

log = logging.getLogger("carla_bridge.standin.streaming")

_TOKEN = struct.Struct("<IHBB16s")
PROTOCOL_TCP = 1
ADDRESS_IPV4 = 1
SEND_TIMEOUT_S = 2.0
"""A subscriber that cannot take a frame for this long is dropped, so a stuck client never stalls ticks."""


def encode_token(stream_id: int, port: int, host: str = "127.0.0.1") -> bytes:
    """The 24-byte stream token for ``stream_id`` served on ``host:port``."""
    address = socket.inet_aton(host) + bytes(12)
    return _TOKEN.pack(stream_id, port, PROTOCOL_TCP, ADDRESS_IPV4, address)


def decode_token(token: bytes) -> tuple[int, int] | None:
    """``(stream_id, port)`` of a TCP/IPv4 stream token; None for bytes that are no such token."""
    if len(token) != _TOKEN.size:
        return None
    stream_id, port, protocol, address_type, _ = _TOKEN.unpack(token)
    if (protocol, address_type) != (PROTOCOL_TCP, ADDRESS_IPV4):
        return None
    return stream_id, port


class StreamServer(TcpServer):
    """Accept stream subscriptions on ``host:port`` and publish payloads to a stream's subscribers;
    ``exists(stream_id)`` says which streams there are (the episode's, its sensors')."""

    name = "stream"
    max_connections = 256  # every camera of every client, and each client's episode stream
    connection_timeout = SEND_TIMEOUT_S

    def __init__(self, host: str, port: int, exists: Callable[[int], bool]) -> None:
        super().__init__(host, port)
        self._exists = exists
        self._subscribers: dict[int, list[socket.socket]] = {}
        self._expected: set[int] = set()  # streams a client asked a token for and has not joined yet
        self._joined = threading.Condition(self._lock)

    def token(self, stream_id: int) -> bytes:
        return encode_token(stream_id, self.port, self.host)

    def expect(self, stream_id: int) -> None:
        """A client resolved this stream's token: it is about to subscribe (see wait_for_subscriber)."""
        with self._lock:
            if not self._subscribers.get(stream_id):
                self._expected.add(stream_id)

    def wait_for_subscriber(self, stream_id: int, timeout_s: float) -> bool:
        """Wait for an expected subscription to arrive (at most ``timeout_s``).

        ``sensor.listen()`` subscribes asynchronously; a real server takes long enough to render that
        the subscription wins the race with the next tick. Waiting here gives clients the same: the
        first tick after ``listen`` delivers its frame. Returns whether the stream has subscribers.
        """
        with self._joined:
            if stream_id in self._expected:
                self._joined.wait_for(lambda: stream_id not in self._expected, timeout=timeout_s)
                self._expected.discard(stream_id)
            return bool(self._subscribers.get(stream_id))

    def close_stream(self, stream_id: int) -> None:
        """Disconnect everyone on a stream (its sensor was destroyed)."""
        with self._lock:
            sockets = self._subscribers.pop(stream_id, [])
            self._expected.discard(stream_id)
        for sock in sockets:
            self._close(sock)

    def publish(self, stream_id: int, payload: bytes) -> int:
        """Send one frame to every subscriber of ``stream_id``; returns how many got it."""
        with self._lock:
            sockets = list(self._subscribers.get(stream_id, ()))
        message = struct.pack("<I", len(payload)) + payload
        delivered = 0
        for sock in sockets:
            try:
                sock.sendall(message)
                delivered += 1
            except OSError:
                log.info("stream %d: subscriber gone, dropped", stream_id)
                with self._lock:
                    subs = self._subscribers.get(stream_id, [])
                    if sock in subs:
                        subs.remove(sock)
                self._close(sock)
        return delivered

    def _read_stream_id(self, conn: socket.socket, address: tuple) -> int | None:
        """The 4-byte stream id a subscriber sends first; None (and the connection closed) without it."""
        header = b""
        try:
            while len(header) < 4:
                chunk = conn.recv(4 - len(header))
                if not chunk:
                    break
                header += chunk
        except OSError:
            pass
        if len(header) < 4:
            log.warning("stream connection from %s:%s sent no stream id; closed", *address)
            self._close(conn)
            return None
        return struct.unpack("<I", header)[0]

    def _connected(self, conn: socket.socket, address: tuple) -> None:
        """A subscription: the stream id, then the frames of that stream until either side closes."""
        stream_id = self._read_stream_id(conn, address)
        if stream_id is not None:
            self._subscribe(conn, address, stream_id)

    def _subscribe(self, conn: socket.socket, address: tuple, stream_id: int) -> None:
        with self._lock:  # close_stream() cannot run between the check and the subscription
            if self._stopping.is_set():
                return  # stop() closed it
            exists = self._exists(stream_id)
            if exists:
                self._subscribers.setdefault(stream_id, []).append(conn)
                self._expected.discard(stream_id)
                self._joined.notify_all()
        if not exists:
            log.info("stream connection from %s:%s asked for stream %d, which does not exist; closed",
                     *address, stream_id)
            self._close(conn)
            return
        log.debug("stream %d: subscriber %s:%s", stream_id, *address)
