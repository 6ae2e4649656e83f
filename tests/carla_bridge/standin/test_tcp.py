"""The accept loop both stand-in servers share (carla_bridge.standin.tcp): failures of accept() that
pass (out of descriptors) are waited out and logged briefly; connections past the cap are closed."""

from __future__ import annotations

import errno
import logging
import socket
import threading

import pytest

from carla_bridge.standin import tcp
from carla_bridge.standin.tcp import TcpServer
from support.carla import free_port_pair


class EchoOnce(TcpServer):
    """Answers one line per connection, then keeps the connection open until the client closes it."""

    name = "echo"

    def _connected(self, conn: socket.socket, address: tuple) -> None:
        conn.settimeout(5.0)
        try:
            while data := conn.recv(64):
                conn.sendall(data)
        except OSError:
            pass
        finally:
            self._close(conn)


class FailingListener:
    """A listening socket whose first ``failures`` accepts fail with EMFILE."""

    def __init__(self, sock: socket.socket, failures: int) -> None:
        self.sock, self.failures = sock, failures

    def accept(self):
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return self.sock.accept()

    def __getattr__(self, name: str):
        return getattr(self.sock, name)


def _echo(port: int, text: bytes = b"hi") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(text)
        return sock.recv(64)


def test_out_of_descriptors_is_waited_out_and_logged_once_per_run(monkeypatch, caplog):
    monkeypatch.setattr(tcp, "ACCEPT_BACKOFF_S", 0.01)
    port, _ = free_port_pair()
    server = EchoOnce("127.0.0.1", port)
    server._listener = FailingListener(server._listener, failures=30)
    with caplog.at_level(logging.WARNING, logger="carla_bridge.standin.tcp"):
        server.start()
        try:
            assert _echo(port) == b"hi"  # served once the 30 failures have passed
        finally:
            server.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "out of file descriptors" in lines[0] and "ulimit -n" in lines[0]
    assert lines[1].endswith("no longer (30 in that run)")
    assert not server._thread.is_alive()  # stop() still ends the loop


def test_connections_past_the_cap_are_closed_and_the_rest_served(monkeypatch):
    monkeypatch.setattr(EchoOnce, "max_connections", 3)
    port, _ = free_port_pair()
    server = EchoOnce("127.0.0.1", port).start()
    try:
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
        for sock in held:
            sock.sendall(b"x")
            assert sock.recv(8) == b"x"
        assert _echo(port) == b""  # the fourth: closed at once
        held.pop().close()
        served = threading.Event()
        for _ in range(50):  # the server notices the close a moment later
            if server.open_connections() < 3 and _echo(port) == b"hi":
                served.set()
                break
            threading.Event().wait(0.02)
        assert served.is_set()
        for sock in held:
            sock.close()
    finally:
        server.stop()
    assert server.open_connections() == 0


@pytest.mark.parametrize("started", [True, False])
def test_stop_ends_the_loop_whether_or_not_it_started(started):
    port, _ = free_port_pair()
    server = EchoOnce("127.0.0.1", port)
    if started:
        server.start()
    server.stop()
    assert not server._thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
