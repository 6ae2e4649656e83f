"""The session's part of the fault suite (README, Reliability): ``python launch.py --headless --record``
on the procedural world, its disk filled up mid-drive (a real tmpfs) and killed with SIGKILL. Real
processes, every wait bounded; each test asserts what a person sees, that nothing recorded is lost, and
what the check command (``python -m carla_bridge.session``) says of the session afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
import pytest

from carla_bridge.session.reader import load_frame, open_session
from support.disk import tiny_tmpfs
from support.game import RES, tiny_model_path  # noqa: F401 (fixture)
from support.sessions import lines_written

pytestmark = [pytest.mark.fault, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]


def _launch_recording(model: Path, record: Path, *flags: str) -> subprocess.Popen:
    """``python launch.py --headless --source procedural --record RECORD`` (tiny model, cpu, 64x32)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(PYTHONPATH=str(REPO), SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    argv = [sys.executable, str(REPO / "launch.py"), "--headless", "--source", "procedural", "--res", RES,
            "--model", str(model), "--backend", "torch", "--device", "cpu", "--seed", "0",
            "--record", str(record), "--frames", "100000", *flags]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def _check(session: Path) -> subprocess.CompletedProcess:
    """``python -m carla_bridge.session SESSION --load``, as a person runs it."""
    return subprocess.run([sys.executable, "-m", "carla_bridge.session", str(session), "--load"],
                          capture_output=True, text=True, timeout=60, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


def _only_session(record: Path) -> Path:
    (session,) = [p.parent for p in record.glob("*/session.json")]
    return session


def _every_frame_loads(session: Path) -> int:
    """Opens the session and loads each of its frames; returns how many."""
    index = open_session(session)
    for position in range(len(index.records)):
        load_frame(index, position)
    return len(index.records)


def _plays(mp4: Path) -> bool:
    """ffmpeg decodes the whole file without an error (-xerror: a damaged packet fails it)."""
    decode = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-xerror", "-i", str(mp4),
                             "-f", "null", "-"], capture_output=True, timeout=60)
    return decode.returncode == 0


def test_disk_full_mid_drive_closes_the_session_saying_so(tiny_model_path):
    with tiny_tmpfs("2m", "tests/carla_bridge/session/test_writer.py's failing-writer test") as mount:
        game = _launch_recording(tiny_model_path, mount / "rec", "--record-rgb")
        out, err = game.communicate(timeout=120)
        # A headless drive exists to record: it stops, saying why (a windowed one drives on, its HUD says so)
        assert game.returncode == 1, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        assert "recording stopped: disk full after" in out, out[-3000:]
        session = _only_session(mount / "rec")
        litter = [p.name for p in mount.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]
        assert litter == [], litter
        meta = json.loads((session / "session.json").read_text())
        assert meta["closed"] is True and meta["ended_by"] == "disk full", meta
        frames = _every_frame_loads(session)
        assert frames == meta["frames"] > 0
        for kind in ("labels", "flow", "rgb"):  # no file of the frame the disk could not take
            assert len(list((session / kind).iterdir())) == frames, kind
        for name in ("render.mp4", "engine.mp4"):  # finished, or removed and said so: never unplayable
            if (session / name).exists():
                assert _plays(session / name), name
            else:
                assert any(note.startswith(f"{name} removed") for note in meta["notes"]), meta["notes"]
        check = _check(session)
        assert check.returncode == 0, check.stderr
        assert f"disk full after {frames} frames" in check.stdout, check.stdout
        assert "cut off" not in check.stdout


def test_kill_9_mid_recording_keeps_the_session_up_to_its_last_line(tiny_model_path, tmp_path):
    record = tmp_path / "rec"
    game = _launch_recording(tiny_model_path, record)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and game.poll() is None and (
                not list(record.glob("*/frames.jsonl")) or lines_written(_only_session(record)) < 10):
            time.sleep(0.1)
        assert game.poll() is None, game.communicate()[1][-3000:]
        seen = lines_written(_only_session(record))
        assert seen >= 10, f"the drive recorded {seen} frames in 90 s"
    finally:
        game.kill()
        game.communicate(timeout=30)
    assert game.returncode == -9
    session = _only_session(record)
    assert json.loads((session / "session.json").read_text())["closed"] is False
    assert _every_frame_loads(session) >= seen  # every line written before the kill, each frame whole
    check = _check(session)
    assert check.returncode == 0, check.stderr
    assert "not closed: the recording was cut off (crash or kill)" in check.stdout, check.stdout
