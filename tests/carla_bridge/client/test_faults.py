"""The CARLA client's part of the fault suite (README, Reliability): ``python launch.py --source carla
--headless`` against no server, a stand-in killed or frozen mid-drive, and a recorded soak. Real
processes, every wait bounded; each test asserts the error a person sees, the exit status, that the
recording stays readable and what the next drive finds."""

from __future__ import annotations

import signal
import socket
import time

import pytest

from carla_bridge.session.reader import load_frame, open_session
from support.carla import StandinProcess, launch_drive, recorded_frames, require_carla, rss_mb, wait_for_frames
from support.game import tiny_model_path  # noqa: F401

pytestmark = [pytest.mark.fault, pytest.mark.carla]


def _readable(record) -> int:
    """The recording opens and its last frame loads; returns its frame count."""
    (folder,) = [p.parent for p in record.glob("*/session.json")]
    index = open_session(folder)
    assert index.records, index.notes
    load_frame(index, len(index.records) - 1)
    assert (folder / "render.mp4").stat().st_size > 0, "the recording was not finalized"
    return len(index.records)


def test_no_server_is_one_line_naming_the_address_and_what_to_do(tiny_model_path, tmp_path):
    require_carla()
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    game = launch_drive(port, port + 1, tiny_model_path, tmp_path / "rec")
    out, err = game.communicate(timeout=60)
    assert game.returncode == 2, err[-3000:]
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert f"no CARLA server answers at 127.0.0.1:{port}" in err and "start CARLA first" in err, err
    assert "--source procedural" in err and not (tmp_path / "rec").exists()


@pytest.mark.slow
def test_server_killed_mid_drive_ends_it_with_the_recording_readable(tiny_model_path, tmp_path):
    require_carla()
    server = StandinProcess("--seed", "0", "--pedestrians", "0")
    game = launch_drive(server.port, server.tm_port, tiny_model_path, tmp_path / "rec", "--frames", "100000")
    try:
        wait_for_frames(game, tmp_path / "rec", 5)
        server.kill()
        killed = time.monotonic()
        out, err = game.communicate(timeout=60)  # must end on its own: nothing hangs
        elapsed = time.monotonic() - killed
    finally:
        game.kill()
        server.kill()
    assert elapsed < 30.0, f"{elapsed:.1f} s from the kill to the exit"
    assert "Traceback" not in err, err[-3000:]
    assert _readable(tmp_path / "rec") >= 5
    if game.returncode == -signal.SIGABRT:
        # Headless drives use the Traffic Manager autopilot. When the server dies while the TM's
        # thread (inside libcarla, started by world.tick) waits on an RPC, libcarla aborts the
        # process; CarlaSource probes the server before each autopilot tick, which catches a server
        # that is already gone, but not one dying during the tick. Known upstream limitation.
        assert "terminate called" in err, err[-3000:]
    else:
        assert f"127.0.0.1:{server.port} disconnected" in out + err, (out + err)[-3000:]


@pytest.mark.slow
def test_server_frozen_mid_drive_is_noticed_and_the_next_drive_restores_it(
        tiny_model_path, tmp_path, monkeypatch):
    """A frozen server (SIGSTOP) still accepts TCP connections: taken for live, every teardown RPC would
    time out in turn and a Traffic Manager call would abort the process. Once it runs again (SIGCONT),
    the next drive finds the frozen drive's note and puts the world's settings back."""
    carla = require_carla()
    from carla_bridge.client.source import CarlaSource

    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path / "cache"))  # the game's and the next drive's
    server = StandinProcess("--seed", "0", "--pedestrians", "0")
    game = launch_drive(server.port, server.tm_port, tiny_model_path, tmp_path / "rec", "--frames", "100000",
                        "--timeout", "3")
    try:
        wait_for_frames(game, tmp_path / "rec", 5)
        server.process.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        out, err = game.communicate(timeout=60)
        elapsed = time.monotonic() - stopped
    finally:
        game.kill()
        server.process.send_signal(signal.SIGCONT)
    try:
        assert elapsed < 20.0, f"{elapsed:.1f} s from the hang to the exit"  # 3 s time-out, no teardown RPCs
        assert _readable(tmp_path / "rec") >= 5
        if game.returncode == -signal.SIGABRT:
            # The upstream limitation of the test above, in its hang form: the Traffic Manager's own
            # thread (inside libcarla) can be waiting on an RPC when the server stops; its time-out is
            # thrown in that thread and libcarla aborts. Python sees nothing to catch; about 1 run in 6.
            assert "terminate called" in err and "TimeoutException" in err, err[-3000:]
        else:
            assert game.returncode == 1 and "terminate called" not in err, err[-3000:]
            assert f"127.0.0.1:{server.port} stopped answering" in err, err[-3000:]
            assert "left on it the ego" in err and "synchronous mode on" in err, err[-3000:]
        client = carla.Client("127.0.0.1", server.port)
        client.set_timeout(5.0)
        world = client.get_world()
        assert world.get_settings().synchronous_mode  # as the frozen drive left it
        source = CarlaSource(port=server.port, tm_port=server.tm_port, size=(64, 32), seed=6, timeout_s=5.0)
        source.reset()
        source.close()
        restored = world.get_settings()
        assert (restored.synchronous_mode, restored.fixed_delta_seconds) == (False, None)
        world.wait_for_tick(5.0)
        assert [a.type_id for a in world.get_actors()] == ["spectator"]
    finally:
        assert server.stop() == 0


@pytest.mark.slow
def test_a_recorded_soak_keeps_memory_flat(tiny_model_path, tmp_path):
    """20 s of a recorded drive: the game's and the stand-in's resident memory stay within 30 MB of
    what they held once the drive was under way; SIGTERM then ends both cleanly."""
    require_carla()
    server = StandinProcess("--seed", "0", "--pedestrians", "0")
    game = launch_drive(server.port, server.tm_port, tiny_model_path, tmp_path / "rec", "--autopilot")
    try:  # no --frames: the drive runs until the signal, which then is its normal end (exit 0)
        wait_for_frames(game, tmp_path / "rec", 30)
        start = {"game": rss_mb(game.pid), "stand-in": rss_mb(server.process.pid)}
        first = len(recorded_frames(tmp_path / "rec"))
        time.sleep(20.0)
        end = {"game": rss_mb(game.pid), "stand-in": rss_mb(server.process.pid)}
        frames = len(recorded_frames(tmp_path / "rec")) - first
        game.send_signal(signal.SIGTERM)
        out, err = game.communicate(timeout=60)
    finally:
        game.kill()
        assert server.stop() == 0
    figures = ", ".join(f"{k} {start[k]:.0f} -> {end[k]:.0f} MB" for k in start) + f" over {frames} frames"
    print("soak:", figures)
    assert game.returncode == 0, out[-2000:] + err[-3000:]
    assert frames >= 20, figures
    assert all(end[k] - start[k] < 30.0 for k in start), figures
    assert _readable(tmp_path / "rec") >= first + frames
    assert not server.errors(), "".join(server.errors())
