"""Shared helpers of the CARLA tests (no tests here): free ports, and the stand-in server run the way
people run it, ``python -m carla_bridge.standin`` in its own process, so the real ``carla`` client in
the test process talks to it over TCP exactly as it would to CARLA."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, ContextManager

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVER_START_TIMEOUT_S = 60.0  # a cold numba cache compiles the renderer once


def free_port_pair() -> tuple[int, int]:
    """(p, q): p and p + 1 free (CARLA streams on port + 1) and q free for a Traffic Manager."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 2 > 65535:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port + 1))
                b.bind(("0.0.0.0", port + 2))
        except OSError:
            continue
        return port, port + 2
    pytest.skip("no free TCP ports for a stand-in server")


def require_carla():
    """The carla client module; skips with the reason when it is not installed."""
    return pytest.importorskip("carla", reason="the carla 0.9.16 client is not installed (pip install -e .[carla])")


class StandinProcess:
    """``python -m carla_bridge.standin`` on free ports; ``stop()`` sends SIGTERM and checks the exit."""

    def __init__(self, *extra: str) -> None:
        self.port, self.tm_port = free_port_pair()
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "carla_bridge.standin", "--port", str(self.port), "--log-level", "INFO", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
        self.log: list[str] = []
        self.expected_errors: list[str] = []  # substrings of ERROR lines a test provoked on purpose
        self._stderr = threading.Thread(target=self._drain, daemon=True)
        self._stderr.start()
        ready = _read_line(self.process, SERVER_START_TIMEOUT_S)
        if not ready.startswith("READY"):
            self.kill()
            raise RuntimeError(f"stand-in did not start: {ready!r}\n" + "".join(self.log[-30:]))

    def _drain(self) -> None:
        for line in self.process.stderr:
            self.log.append(line)

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, then wait: returns the exit status (kills and fails the test if it hangs)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail("the stand-in did not exit within %gs of SIGTERM" % timeout_s)
        self._stderr.join(timeout=2.0)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL and wait until its port no longer accepts connections (the server is gone)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                return
            time.sleep(0.01)

    def errors(self) -> list[str]:
        """ERROR lines and tracebacks in the server log, except the ones tests provoked."""
        return [line for line in self.log if (" ERROR " in line or "Traceback" in line)
                and not any(expected in line for expected in self.expected_errors)]


def _read_line(process: subprocess.Popen, timeout_s: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    return result[0] if result else f"<nothing within {timeout_s:g}s>"


@pytest.fixture(scope="module")
def standin():
    """A stand-in server with a static town (no pedestrians) for the module; it must stop cleanly."""
    require_carla()
    server = StandinProcess("--seed", "0", "--pedestrians", "0")
    yield server
    assert server.stop() == 0, "".join(server.log[-30:])
    assert not server.errors(), "".join(server.errors())


@pytest.fixture
def client(standin):
    """A raw carla.Client on the module's stand-in (5 s timeout)."""
    carla = require_carla()
    c = carla.Client("127.0.0.1", standin.port)
    c.set_timeout(5.0)
    return c


def who_held_first(first: ContextManager, second: Callable[[], ContextManager], wait_s: float = 0.3) -> list[str]:
    """The order in which ``first`` (held here for ``wait_s``) and ``second()`` (entered from a thread
    started while ``first`` is held) got their lock: ["first", "second"] when the lock keeps the
    second out until the first lets go."""
    order: list[str] = []

    def enter_second() -> None:
        with second():
            order.append("second")

    with first:
        other = threading.Thread(target=enter_second)
        other.start()
        time.sleep(wait_s)
        order.append("first")
    other.join(5)
    return order
