"""Shared helpers of the CARLA tests (no tests here): free ports; the stand-in server run the way people
run it, ``python -m carla_bridge.standin`` in its own process, so the real ``carla`` client in the test
process talks to it over TCP exactly as it would to CARLA; and a driving client in a process of its
own (``start_client``), so the test process survives whatever happens to it (killed, hung)."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

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


STANDIN_MAIN = "\nimport sys\nfrom carla_bridge.standin.__main__ import main\nsys.exit(main(sys.argv[1:]))\n"


class StandinProcess:
    """``python -m carla_bridge.standin`` on free ports; ``stop()`` sends SIGTERM and checks the exit."""

    def __init__(self, *extra: str, nofile: int | None = None, patch: str = "") -> None:
        """``nofile``: the process's soft limit of open file descriptors (RLIMIT_NOFILE), when set.
        ``patch``: Python run in the server process before it starts (a test's stand-in for a server
        that sends what the procedural world never makes)."""
        self.port, self.tm_port = free_port_pair()
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        limit = []
        if nofile is not None:
            if not shutil.which("prlimit"):
                pytest.skip("prlimit (util-linux) is not installed")
            limit = ["prlimit", f"--nofile={nofile}:"]
        self.process = subprocess.Popen(
            [*limit, sys.executable, *(["-c", patch + STANDIN_MAIN] if patch else ["-m", "carla_bridge.standin"]),
             "--port", str(self.port), "--log-level", "INFO", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
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


CLIENT = textwrap.dedent("""
    import faulthandler, logging, signal, sys
    # Ctrl+C as in a terminal: a test run started in the background by a non-interactive shell
    # (`pytest ... &`) hands its children SIGINT ignored, and Python then never raises KeyboardInterrupt.
    print("inherited SIGINT handler:", signal.getsignal(signal.SIGINT), file=sys.stderr, flush=True)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks for stacks on a hang
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(relativeCreated)d %(name)s: %(message)s")
    from carla_bridge.client.source import CarlaConnectionError, CarlaSource
    from carla_bridge.core.frames import Control
    port, tm_port, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    source = CarlaSource(port=port, tm_port=tm_port, size=(64, 32), seed=5, timeout_s=3.0)
    if mode == "sigterm":  # what the game installs: close, then leave
        signal.signal(signal.SIGTERM, lambda *_: (source.close(), sys.exit(0)))
    try:
        with source:
            source.reset()
            print("STARTED", flush=True)  # ego and cameras spawned, the world in the drive's settings
            for _ in range(5):
                source.step(Control(autopilot=True))
            print("DRIVING", flush=True)
            if mode == "killed":
                sys.stdin.readline()  # the test kills the server, then says go on
                try:
                    source.step(Control(autopilot=True))
                    print("NO ERROR", flush=True)
                except CarlaConnectionError as error:
                    print("ERROR", error, flush=True)
            else:
                while True:
                    source.step(Control(autopilot=True))
    except KeyboardInterrupt:
        pass
    print("CLOSED", flush=True)
""")


def start_client(server: StandinProcess, mode: str) -> subprocess.Popen:
    """A CarlaSource driving ``server`` on autopilot in its own process (``CLIENT``). ``mode``: "killed"
    (after DRIVING it waits for a line on stdin, then steps once more), "sigterm" (closes on SIGTERM, as
    the game does), anything else (drives until Ctrl+C)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", CLIENT, str(server.port), str(server.tm_port), mode],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)


def wait_for(process: subprocess.Popen, word: str, timeout_s: float = 30.0, hang_ok: bool = False) -> bool:
    """Read the client's stdout lines until one starts with ``word``; a client that hangs or ends
    before fails the test with diagnostics (select: a hung client must not block readline). With
    hang_ok, a client still running at the deadline returns False instead."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        readable, _, _ = select.select([process.stdout], [], [], 0.5)
        if not readable:
            continue
        line = process.stdout.readline()
        if line.startswith(word):
            return True
        if not line and process.poll() is not None:
            break
    if hang_ok and process.poll() is None:
        return False
    pytest.fail(f"client never printed {word}:\n" + diagnose(process))


def diagnose(process: subprocess.Popen, server: StandinProcess | None = None) -> str:
    """Why a client hangs: its signal state (/proc), native stacks (gdb, where installed: libcarla's
    threads are C++), Python stacks (faulthandler on SIGUSR1), output and the server's log tail.
    Kills the client."""
    parts = []
    if process.poll() is None:
        try:
            status = open(f"/proc/{process.pid}/status").read().splitlines()
            masks = [line for line in status if line.startswith(("Sig", "Shd"))]
            parts.append("signal state (SIGINT is bit 0x2):\n" + "\n".join(masks))
        except OSError as error:
            parts.append(f"no /proc status: {error}")
        gdb = shutil.which("gdb")
        if gdb:
            try:
                native = subprocess.run([gdb, "-p", str(process.pid), "-batch", "-nx", "-ex", "thread apply all bt 25"],
                                        capture_output=True, text=True, timeout=60).stdout
                lines = [line[:220] for line in native.splitlines() if line.startswith(("Thread", "#"))]
                parts.append("native stacks (gdb):\n" + "\n".join(lines)[-24000:])
            except (OSError, subprocess.TimeoutExpired) as error:
                parts.append(f"gdb failed: {error}")
        process.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
    process.kill()
    out, err = process.communicate(timeout=10)
    parts.append(f"client exit status {process.returncode}; stdout:\n{out[-2000:]}\nstderr:\n{err[-8000:]}")
    if server is not None:
        parts.append("server log tail:\n" + "".join(server.log[-40:]))
    return "\n".join(parts)


def finish(process: subprocess.Popen, server: StandinProcess, timeout_s: float,
           stdin: str | None = None) -> tuple[str, str]:
    """communicate() with a deadline; a client still running then fails the test with diagnostics."""
    try:
        return process.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the client did not exit within {timeout_s:g} s:\n" + diagnose(process, server))


def rss_mb(pid: int) -> float:
    """A process's resident memory (VmRSS in /proc/PID/status), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def launch_drive(port: int, tm_port: int, model: Path, record: Path | None, *flags: str) -> subprocess.Popen:
    """``python launch.py --source carla --headless`` at 127.0.0.1:``port`` (tiny model on the cpu,
    recording to ``record`` when given), in a process of its own."""
    from support.game import RES

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(PYTHONPATH=str(REPO), SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    argv = [sys.executable, str(REPO / "launch.py"), "--source", "carla", "--port", str(port), "--tm-port",
            str(tm_port), "--headless", "--res", RES, "--model", str(model), "--backend", "torch",
            "--device", "cpu", *(["--record", str(record)] if record else []), *flags]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def recorded_frames(record: Path) -> list[dict]:
    """The frames.jsonl lines of the one session under ``record`` so far ([] before it exists)."""
    lines = list(record.glob("*/frames.jsonl"))
    if not lines:
        return []
    return [json.loads(line) for line in lines[0].read_text().splitlines() if line.strip()]


def wait_for_frames(game: subprocess.Popen, record: Path, count: int, timeout_s: float = 60.0) -> None:
    """Until the drive has recorded ``count`` frames; fails the test if it ends or stalls first."""
    deadline = time.monotonic() + timeout_s
    while len(recorded_frames(record)) < count and time.monotonic() < deadline and game.poll() is None:
        time.sleep(0.1)
    assert len(recorded_frames(record)) >= count, f"the game recorded {len(recorded_frames(record))} of {count} frames"
