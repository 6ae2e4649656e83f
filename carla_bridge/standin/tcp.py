"""The TCP plumbing both stand-in servers share (msgpack-rpc and the sensor streams): a listener, an
accept loop that hands each connection to a thread of its own, and a stop that closes every socket."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable


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


def close_socket(sock: socket.socket) -> None:
    """Shut down and close, so the peer sees the connection end at once; errors mean it already has."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class TcpServer:
    """Accept connections on ``host:port`` in a background thread until :meth:`stop`; each one is
    handed to ``_connected(conn, address)`` on a thread of its own. Subclasses keep their sockets and
    say which are open in ``_take_open_sockets``, so stop() can close them."""

    name = "tcp"

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._listener = make_listener(host, port)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, name=f"standin-{self.name}-accept", daemon=True)

    def start(self) -> TcpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection (clients then see the server gone)."""
        self._stopping.set()
        with self._lock:
            sockets = list(self._take_open_sockets())
        for sock in sockets:
            close_socket(sock)
        if self._thread.ident is not None:  # started: a server whose other port was in use never was
            self._thread.join(timeout=2.0)
        close_socket(self._listener)

    def _take_open_sockets(self) -> Iterable[socket.socket]:
        """The connections still open, forgotten by the server (called under the lock)."""
        raise NotImplementedError

    def _connected(self, conn: socket.socket, address: tuple) -> None:
        raise NotImplementedError

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._connected, args=(conn, address),
                             name=f"standin-{self.name}-{address[1]}", daemon=True).start()
