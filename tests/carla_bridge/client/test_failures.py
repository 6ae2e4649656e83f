"""CarlaSource when things go wrong: the server killed mid-run (a clear CarlaConnectionError, nothing
hangs, close() is quick), and a client stopped by SIGTERM or Ctrl+C whose handlers call close() (the
server is left as it was, the process ends within seconds). Client processes run apart so the test
process survives whatever happens; a client that hangs fails its test with its signal state, native
(gdb) and Python stacks and the server's log. Also: camera queues that survive Ctrl+C (no server)."""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from carla_bridge.core.frames import Control
from support.carla import REPO, StandinProcess, client, require_carla, standin  # noqa: F401

pytestmark = pytest.mark.carla

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


def _client_process(server: StandinProcess, mode: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", CLIENT, str(server.port), str(server.tm_port), mode],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)


def _wait_for(process: subprocess.Popen, word: str, timeout_s: float = 30.0, hang_ok: bool = False) -> bool:
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
    pytest.fail(f"client never printed {word}:\n" + _diagnose(process))


def _diagnose(process: subprocess.Popen, server: StandinProcess | None = None) -> str:
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


def _finish(process: subprocess.Popen, server: StandinProcess, timeout_s: float,
            stdin: str | None = None) -> tuple[str, str]:
    """communicate() with a deadline; a client still running then fails the test with diagnostics."""
    try:
        return process.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the client did not exit within {timeout_s:g} s:\n" + _diagnose(process, server))


def test_server_killed_mid_run_is_a_clear_error_in_process():
    require_carla()
    from carla_bridge.client.source import CarlaConnectionError, CarlaSource

    server = StandinProcess("--pedestrians", "0")
    source = CarlaSource(port=server.port, tm_port=server.tm_port, size=(64, 32), seed=2, timeout_s=2.0)
    try:
        source.reset()
        source.step(Control(throttle=1.0))
        server.kill()
        started = time.monotonic()
        with pytest.raises(CarlaConnectionError, match=f"127.0.0.1:{server.port} disconnected"):
            source.step(Control(throttle=1.0))
        assert time.monotonic() - started < 4.0
    finally:
        started = time.monotonic()
        source.close()
        assert time.monotonic() - started < 1.5
        server.kill()


def test_server_killed_under_autopilot_ends_with_a_clear_error():
    require_carla()
    server = StandinProcess("--pedestrians", "0")
    client_process = _client_process(server, "killed")
    try:
        _wait_for(client_process, "DRIVING")
        server.kill()
        out, err = _finish(client_process, server, 30.0, "go\n")
    finally:
        client_process.kill()
        server.kill()
    assert f"ERROR the CARLA server at 127.0.0.1:{server.port} disconnected" in out, err[-2000:]
    assert "CLOSED" in out, err[-2000:]  # the source closed: the game finalizes its recording here
    # Known libcarla limitation: with a Traffic Manager whose server died, the client library
    # sometimes aborts in its own static teardown at interpreter exit ("terminate called without an
    # active exception", SIGABRT), after all of our code has run. Anything else is a failure.
    assert client_process.returncode in (0, -signal.SIGABRT), err[-2000:]
    if client_process.returncode:
        assert "terminate called without an active exception" in err


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_signal_tears_down_and_restores_the_server(standin, client, how):
    client_process = _client_process(standin, "sigterm" if how == signal.SIGTERM else "ctrl-c")
    try:
        _wait_for(client_process, "DRIVING")
        world = client.get_world()
        assert world.get_settings().synchronous_mode
        client_process.send_signal(how)
        signalled = time.monotonic()
        out, err = _finish(client_process, standin, 30.0)
        exit_s = time.monotonic() - signalled
    finally:
        client_process.kill()
    assert client_process.returncode == 0, err[-2000:]
    if how == signal.SIGINT:
        assert "CLOSED" in out, err[-2000:]  # KeyboardInterrupt left `with source:` and the program went on
    assert exit_s < 10.0, f"the client took {exit_s:.1f} s to exit after the signal:\n{err[-4000:]}"
    settings = world.get_settings()
    assert not settings.synchronous_mode and settings.fixed_delta_seconds is None
    world.wait_for_tick(5.0)
    assert [a.type_id for a in world.get_actors()] == ["spectator"]


CAMERA_QUEUE_UNDER_CTRL_C = textwrap.dedent("""
    import os, signal, sys, threading, time
    from carla_bridge.client.source import make_camera_queue
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (see CLIENT)
    sys.setswitchinterval(1e-6)  # switch threads often, so Ctrl+C often finds get() waiting on a lock
    producers = []
    for trial in range(int(sys.argv[1])):
        frames, stop = make_camera_queue(), threading.Event()
        def camera():  # libcarla's streaming thread, delivering frames as fast as it can
            while not stop.is_set():
                frames.put(trial)
        producer = threading.Thread(target=camera, daemon=True)
        producer.start()
        ctrl_c = threading.Thread(target=lambda: (time.sleep(0.002 + trial % 10 * 0.0005),
                                                  os.kill(os.getpid(), signal.SIGINT)))
        try:
            ctrl_c.start()
            while True:
                frames.get(timeout=1.0)  # CarlaSource._wait_frame
        except KeyboardInterrupt:
            pass
        ctrl_c.join()
        stop.set()
        producer.join(0.1)
        producers.append(producer)
    deadline = time.monotonic() + 20.0  # a loaded box can be slow to end a free camera thread, never a blocked one
    for producer in producers:
        producer.join(max(0.0, deadline - time.monotonic()))
    print("BLOCKED", sum(producer.is_alive() for producer in producers))
""")


def test_camera_queue_survives_ctrl_c_in_get():
    """Ctrl+C while step() drains a camera queue must not leave the queue locked: the camera thread's
    next put() would block for ever and the client could never be destroyed (the process hangs after
    Ctrl+C). queue.Queue fails this (1 try in 4 to 7 on a loaded 2-core box: KeyboardInterrupt
    between its mutex's acquire and the ``with`` block, CPython bpo-29988); make_camera_queue's must
    pass every try. No CARLA needed: the scenario runs in its own process, which takes the signals."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", CAMERA_QUEUE_UNDER_CTRL_C, "100"], capture_output=True,
                            text=True, env=env, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["BLOCKED", "0"], result.stderr[-2000:]


def _kill_a_driving_client(server: StandinProcess) -> subprocess.Popen:
    """A client process that drives (autopilot), then SIGKILL: no teardown runs."""
    client_process = _client_process(server, "ctrl-c")
    _wait_for(client_process, "STARTED")
    # libcarla 0.9.16's known lost wake-up (carla_source._advance) can hang a synchronous tick for
    # ever, about once in 250 runs on a loaded box (seen in a fresh-clone suite run). A client killed
    # inside that tick is as dead a drive as one killed between ticks, which is all these tests need.
    _wait_for(client_process, "DRIVING", hang_ok=True)
    client_process.kill()
    client_process.communicate(timeout=10)
    return client_process


def _eventually(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _put_the_world_back(world) -> None:
    """After a test that may have failed midway: the module's other tests need the world as it was."""
    settings = world.get_settings()
    settings.synchronous_mode, settings.fixed_delta_seconds = False, None
    world.apply_settings(settings)
    for actor in world.get_actors():
        if actor.type_id != "spectator":
            actor.destroy()


def test_a_killed_client_s_settings_and_actors_are_cleaned_up_by_the_next_session(
        standin, client, tmp_path, monkeypatch, caplog):
    """SIGKILL leaves no teardown: the world stays synchronous (frozen without its ticker) with the
    client's car and cameras in it. The next source at that address reads the dead drive's note,
    destroys those actors and restores the settings from before it."""
    from carla_bridge.client.source import CarlaSource

    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))  # the client process inherits it
    world = client.get_world()
    try:
        _kill_a_driving_client(standin)
        left = world.get_settings()
        assert (left.synchronous_mode, left.fixed_delta_seconds) == (True, pytest.approx(0.05))
        dead_ids = {a.id for a in world.get_actors() if a.type_id != "spectator"}
        assert len(dead_ids) == 5  # the ego and its four cameras
        with caplog.at_level(logging.WARNING, "carla_bridge"):
            source = CarlaSource(port=standin.port, tm_port=standin.tm_port, size=(64, 32), seed=6, timeout_s=5.0)
            source.reset()  # one tick: the test's client hears of that frame's actors (a moment later)
            assert _eventually(lambda: not dead_ids & {a.id for a in world.get_actors()})
            source.close()
        assert "did not end cleanly" in caplog.text and "destroyed what that drive left" in caplog.text
        restored = world.get_settings()
        assert (restored.synchronous_mode, restored.fixed_delta_seconds) == (False, None)
        assert not list((tmp_path / "carla-settings").rglob("*.json"))
        world.wait_for_tick(5.0)
        assert [a.type_id for a in world.get_actors()] == ["spectator"]
    finally:
        _put_the_world_back(world)


def test_a_world_unfrozen_by_hand_keeps_its_settings_and_loses_the_dead_drive_s_actors(
        standin, client, tmp_path, monkeypatch, caplog):
    """The usual first fix of a frozen server (CARLA's config.py --no-sync) changes the settings: the
    note's settings no longer apply, but the car and cameras are still the dead drive's, as spawned."""
    from carla_bridge.client.source import CarlaSource

    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    world = client.get_world()
    try:
        _kill_a_driving_client(standin)
        by_hand = world.get_settings()
        by_hand.synchronous_mode = False  # fixed delta 0.05 stays, as config.py --no-sync leaves it
        world.apply_settings(by_hand)
        with caplog.at_level(logging.WARNING, "carla_bridge"):
            source = CarlaSource(port=standin.port, tm_port=standin.tm_port, size=(64, 32), seed=6, timeout_s=5.0)
            source.reset()  # one tick: the test's client hears of that frame's actors (a moment later)
            assert _eventually(lambda: len([a for a in world.get_actors() if a.type_id.startswith("vehicle")]) == 1)
            assert {a.type_id.split(".")[0] for a in world.get_actors()} == {"spectator", "vehicle", "sensor"}
            source.close()
        assert "did not end cleanly" not in caplog.text and "destroyed what that drive left" in caplog.text
        after = world.get_settings()
        assert (after.synchronous_mode, after.fixed_delta_seconds) == (False, pytest.approx(0.05))
    finally:
        _put_the_world_back(world)


def test_a_second_drive_on_a_server_a_live_one_holds_is_refused(standin, client, tmp_path, monkeypatch):
    from carla_bridge.client.source import CarlaConnectionError, CarlaSource

    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    world = client.get_world()
    client_process = _client_process(standin, "ctrl-c")
    try:
        _wait_for(client_process, "DRIVING")
        with pytest.raises(CarlaConnectionError, match=f"another drive \\(pid {client_process.pid}, since .*\\) is "
                                                       f"driving the CARLA server at 127.0.0.1:{standin.port}"):
            CarlaSource(port=standin.port, tm_port=standin.tm_port + 7, size=(64, 32), seed=6, timeout_s=5.0)
        assert world.get_settings().synchronous_mode  # the live drive's world, untouched
        assert len([a for a in world.get_actors() if a.type_id.startswith("vehicle")]) == 1
        client_process.send_signal(signal.SIGINT)
        _finish(client_process, standin, 30.0)
        assert not list((tmp_path / "carla-settings").rglob("*.json"))  # its own note, removed at its exit
    finally:
        client_process.kill()
        _put_the_world_back(world)
