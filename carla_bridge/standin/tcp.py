"""The TCP plumbing both stand-in servers share (msgpack-rpc and the sensor streams): a listener, an
accept loop that hands each connection to a thread of its own, a cap on open connections, and a stop
that closes every socket."""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time

log = logging.getLogger("carla_bridge.standin.tcp")

# accept(2) fails for reasons that pass (EMFILE, ENFILE, ENOBUFS, ENOMEM, ECONNABORTED): the loop waits
# and tries again; the connection waits in the backlog meanwhile. Only stop() closing the listener ends it.
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)
ACCEPT_BACKOFF_S = 0.1
REPEAT_WARNING_S = 30.0
"""A burst of failing accepts is logged when it starts, then at most once per this many seconds."""


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


class _BurstLog:
    """Warn when a run of failures starts and every REPEAT_WARNING_S while it lasts, with a count;
    say when it ends. One client can cause thousands of failures a second: the log takes a few lines."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.failures = 0
        self._warned_at = 0.0

    def failed(self, reason: str) -> None:
        self.failures += 1
        now = time.monotonic()
        if self.failures == 1 or now - self._warned_at >= REPEAT_WARNING_S:
            self._warned_at = now
            log.warning("%s: %s (%d so far in this run)", self.what, reason, self.failures)

    def succeeded(self) -> None:
        if self.failures:
            log.warning("%s: no longer (%d in that run)", self.what, self.failures)
            self.failures = 0


class TcpServer:
    """Accept connections on ``host:port`` in a background thread until :meth:`stop`; each one is
    handed to ``_connected(conn, address)`` on a thread of its own. At most ``max_connections`` are
    open at once: one more is closed as soon as it is accepted. Subclasses close a connection with
    :meth:`_close`, which forgets it; stop() closes the rest."""

    name = "tcp"
    max_connections = 128
    connection_timeout: float | None = None
    """Seconds a blocking call on a connection may wait (None: forever)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._listener = make_listener(host, port)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept_loop, name=f"standin-{self.name}-accept", daemon=True)

    def start(self) -> TcpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection (clients then see the server gone)."""
        self._stopping.set()
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            close_socket(sock)
        if self._thread.ident is not None:  # started: a server whose other port was in use never was
            self._thread.join(timeout=2.0)
        close_socket(self._listener)

    def open_connections(self) -> int:
        with self._lock:
            return len(self._open)

    def _close(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.discard(conn)
        close_socket(conn)

    def _connected(self, conn: socket.socket, address: tuple) -> None:
        raise NotImplementedError

    def _accept_loop(self) -> None:
        where = f"stand-in {self.name} server on {self.host}:{self.port}"
        failing = _BurstLog(f"{where} cannot accept connections")
        full = _BurstLog(f"{where} refuses connections beyond {self.max_connections} open ones")
        while not self._stopping.is_set():
            try:
                conn, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as error:
                if self._stopping.is_set() or self._listener.fileno() == -1:
                    return  # stop() closed the listener
                if error.errno in OUT_OF_DESCRIPTORS:
                    reason = "out of file descriptors (raise the limit, `ulimit -n`, or close connections)"
                else:
                    reason = error.strerror or str(error)
                failing.failed(reason)
                time.sleep(ACCEPT_BACKOFF_S)
                continue
            failing.succeeded()
            # Set up before stop() can see the connection: it may close it from another thread at once.
            conn.settimeout(self.connection_timeout)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._stopping.is_set():
                    close_socket(conn)
                    return
                admitted = len(self._open) < self.max_connections
                if admitted:
                    self._open.add(conn)
            if not admitted:
                close_socket(conn)
                full.failed(f"closed one from {address[0]}:{address[1]}")
                continue
            full.succeeded()
            threading.Thread(target=self._connected, args=(conn, address),
                             name=f"standin-{self.name}-{address[1]}", daemon=True).start()
