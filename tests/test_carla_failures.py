"""CarlaSource when things go wrong: the server killed mid-run (a clear CarlaConnectionError, nothing
hangs, close() is quick), and a client stopped by SIGTERM or Ctrl+C whose handlers call close() (the
server is left as it was). Client processes run apart so the test process survives whatever happens."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from carla_bridge.frames import Control
from test_carla_support import REPO, StandinProcess, client, require_carla, standin  # noqa: F401

pytestmark = pytest.mark.carla

CLIENT = textwrap.dedent("""
    import signal, sys
    from carla_bridge.carla_source import CarlaConnectionError, CarlaSource
    from carla_bridge.frames import Control
    port, tm_port, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    source = CarlaSource(port=port, tm_port=tm_port, size=(64, 32), seed=5, timeout_s=3.0)
    if mode == "sigterm":  # what the game installs: close, then leave
        signal.signal(signal.SIGTERM, lambda *_: (source.close(), sys.exit(0)))
    try:
        with source:
            source.reset()
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


def _wait_for(process: subprocess.Popen, word: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith(word):
            return
        if not line and process.poll() is not None:
            break
    process.kill()
    pytest.fail(f"client never printed {word}: {process.stderr.read()[-2000:]}")


def test_server_killed_mid_run_is_a_clear_error_in_process():
    require_carla()
    from carla_bridge.carla_source import CarlaConnectionError, CarlaSource

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
        out, err = client_process.communicate("go\n", timeout=30)
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
        out, err = client_process.communicate(timeout=30)
    finally:
        client_process.kill()
    assert client_process.returncode == 0, err[-2000:]
    settings = world.get_settings()
    assert not settings.synchronous_mode and settings.fixed_delta_seconds is None
    world.wait_for_tick(5.0)
    assert [a.type_id for a in world.get_actors()] == ["spectator"]
