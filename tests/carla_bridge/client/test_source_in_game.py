"""CarlaSource in the game, end to end: ``python launch.py --source carla`` (headless) driving through
the real carla client against the stand-in process, recording a session; and the same drive when the
server dies or hangs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.carla import REPO, StandinProcess, require_carla
from support.game import RES, tiny_model_path  # noqa: F401

pytestmark = pytest.mark.carla

LAUNCH = REPO / "launch.py"


def _launch(server: StandinProcess, model: Path, record: Path, *flags: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(PYTHONPATH=str(REPO), SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    argv = [sys.executable, str(LAUNCH), "--source", "carla", "--port", str(server.port), "--tm-port",
            str(server.tm_port), "--headless", "--res", RES, "--model", str(model), "--backend", "torch",
            "--device", "cpu", "--record", str(record), *flags]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def _frames(record: Path) -> list[dict]:
    lines = [p for p in record.glob("*/frames.jsonl")]
    if not lines:
        return []
    return [json.loads(line) for line in lines[0].read_text().splitlines() if line.strip()]


def test_launch_drives_carla_headless_for_40_frames(tiny_model_path, tmp_path):
    carla = require_carla()
    server = StandinProcess("--seed", "0", "--pedestrians", "0")
    try:
        game = _launch(server, tiny_model_path, tmp_path / "rec", "--frames", "40", "--autopilot")
        out, err = game.communicate(timeout=120)
        assert game.returncode == 0, err[-3000:]
        assert f"CARLA at 127.0.0.1:{server.port}" in out and "recorded 40 frames" in out
        frames = _frames(tmp_path / "rec")
        assert len(frames) == 40
        session = json.loads(next((tmp_path / "rec").glob("*/session.json")).read_text())
        assert "carla" in json.dumps(session)
        world = carla.Client("127.0.0.1", server.port).get_world()
        assert not world.get_settings().synchronous_mode  # the game's exit restored the server
        assert [a.type_id for a in world.get_actors()] == ["spectator"]
    finally:
        assert server.stop() == 0
    assert not server.errors(), "".join(server.errors())


def test_launch_ends_the_drive_when_the_server_dies(tiny_model_path, tmp_path):
    require_carla()
    server = StandinProcess("--seed", "0", "--pedestrians", "0")
    game = _launch(server, tiny_model_path, tmp_path / "rec", "--frames", "100000")
    try:
        deadline = time.monotonic() + 60
        while len(_frames(tmp_path / "rec")) < 5 and time.monotonic() < deadline and game.poll() is None:
            time.sleep(0.1)
        assert len(_frames(tmp_path / "rec")) >= 5, "the game never recorded a frame"
        server.kill()
        out, err = game.communicate(timeout=60)  # must end on its own: nothing hangs
    finally:
        game.kill()
        server.kill()
    assert "Traceback" not in err, err[-3000:]
    assert len(_frames(tmp_path / "rec")) >= 5  # the recording is readable up to its last frame
    assert list((tmp_path / "rec").glob("*/render.mp4")), "the recording was not finalized"
    if game.returncode == -signal.SIGABRT:
        # Headless drives use the Traffic Manager autopilot. When the server dies while the TM's
        # thread (inside libcarla, started by world.tick) waits on an RPC, libcarla aborts the
        # process; CarlaSource probes the server before each autopilot tick, which catches a server
        # that is already gone, but not one dying during the tick. Known upstream limitation.
        assert "terminate called" in err, err[-3000:]
    else:
        assert f"127.0.0.1:{server.port} disconnected" in out + err, (out + err)[-3000:]


def test_launch_ends_the_drive_when_the_server_hangs(tiny_model_path, tmp_path):
    """A hung server (SIGSTOP) still accepts TCP connections: taken for live, every teardown RPC would
    time out in turn and a Traffic Manager call would abort the process."""
    require_carla()
    server = StandinProcess("--seed", "0", "--pedestrians", "0")
    game = _launch(server, tiny_model_path, tmp_path / "rec", "--frames", "100000", "--timeout", "3")
    try:
        deadline = time.monotonic() + 60
        while len(_frames(tmp_path / "rec")) < 5 and time.monotonic() < deadline and game.poll() is None:
            time.sleep(0.1)
        assert len(_frames(tmp_path / "rec")) >= 5, "the game never recorded a frame"
        server.process.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        out, err = game.communicate(timeout=60)
        elapsed = time.monotonic() - stopped
    finally:
        game.kill()
        server.process.send_signal(signal.SIGCONT)
        server.kill()
    assert elapsed < 20.0, f"{elapsed:.1f} s from the hang to the exit"  # 3 s time-out, no teardown RPCs
    assert len(_frames(tmp_path / "rec")) >= 5  # the recording is readable up to its last frame
    if game.returncode == -signal.SIGABRT:
        # The upstream limitation of the test above, in its hang form: the Traffic Manager's own thread
        # (inside libcarla) can be waiting on an RPC when the server stops; its time-out is thrown in that
        # thread and libcarla aborts. Python sees nothing to catch; seen in about 1 run in 6 here.
        assert "terminate called" in err and "TimeoutException" in err, err[-3000:]
        return
    assert game.returncode == 1 and "terminate called" not in err, err[-3000:]
    assert f"127.0.0.1:{server.port} stopped answering" in err, err[-3000:]
    assert "left on it the ego" in err and "synchronous mode on" in err, err[-3000:]
    assert list((tmp_path / "rec").glob("*/render.mp4")), "the recording was not finalized"
