"""ProxyServer: CARLA 0.9.16's wire protocol on both sides, the real server behind it.

RPC on ``host:port`` and streaming on ``port + 1``, as CARLA listens. Each client connection gets a
ClientSession with a connection of its own to the real server; when the real server goes away the
session's connection is closed, so the client sees what it would see of CARLA (its own time-out).
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from carla_bridge.proxy.cameras import CameraSelection
from carla_bridge.proxy.neural import RenderFactory
from carla_bridge.proxy.session import CameraRegistry, ClientSession
from carla_bridge.proxy.streams import ProxyStreamServer
from carla_bridge.proxy.upstream import UpstreamGone, UpstreamRpc
from carla_bridge.standin.rpc import RpcServer

log = logging.getLogger("carla_bridge.proxy")

HOST = "127.0.0.1"


class _SessionRpcServer(RpcServer):
    """The stand-in's msgpack-rpc framing, with each connection's calls handed to its own session
    (TcpServer serves each connection on a thread of its own: the session is thread-local)."""

    name = "proxy-rpc"

    def __init__(self, host: str, port: int, open_session) -> None:
        super().__init__(host, port, dispatch=None)
        self._open_session = open_session
        self._local = threading.local()

    def _connected(self, conn: socket.socket, address: tuple) -> None:
        try:
            session = self._open_session()
        except UpstreamGone as error:
            log.warning("client %s:%s refused: %s", *address, error)
            self._close(conn)
            return
        self._local.session = session
        try:
            super()._connected(conn, address)
        finally:
            session.close()

    def _call(self, method: str, params: list) -> tuple[Any, Any]:
        return self._local.session.call(method, params)  # UpstreamGone (an OSError) closes the connection


class ProxyServer:
    """Start with :meth:`start`, end with :meth:`stop` (idempotent); also a context manager."""

    def __init__(self, port: int, carla_host: str, carla_port: int, factory: RenderFactory,
                 selection: CameraSelection = CameraSelection(), host: str = HOST) -> None:
        if not 1 <= port <= 65534:
            raise ValueError(f"--port must lie in 1..65534 (streaming uses port + 1), got {port}")
        self.host, self.port = host, port
        self.carla_host, self.carla_port = carla_host, carla_port
        self.factory, self.selection = factory, selection
        self.cameras = CameraRegistry()
        self.streams = ProxyStreamServer(host, port + 1, carla_host, publishes=self.cameras.publishes)
        try:
            self.rpc = _SessionRpcServer(host, port, self._open_session)
        except Exception:
            self.streams.stop()
            raise
        self._stopped = threading.Event()

    def _open_session(self) -> ClientSession:
        return ClientSession(UpstreamRpc(self.carla_host, self.carla_port), self.streams, self.cameras,
                             self.factory, self.selection)

    def start(self) -> ProxyServer:
        self.streams.start()
        self.rpc.start()
        log.info("CARLA proxy listening on %s:%d (rpc) and %d (streaming), forwarding to %s:%d",
                 self.host, self.port, self.port + 1, self.carla_host, self.carla_port)
        return self

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.rpc.stop()
        self.streams.stop()

    def wait(self, timeout_s: float | None = None) -> bool:
        return self._stopped.wait(timeout_s)

    def __enter__(self) -> ProxyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
