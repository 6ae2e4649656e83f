"""CarlaSource in the game, end to end: ``python launch.py --source carla`` (headless) driving through
the real carla client against the stand-in process, recording a session. The same drive when the
server dies or hangs is in the fault suite (test_faults.py)."""

from __future__ import annotations

import json

import pytest

from support.carla import StandinProcess, launch_drive, recorded_frames, require_carla
from support.game import tiny_model_path  # noqa: F401

pytestmark = pytest.mark.carla


def test_launch_drives_carla_headless_for_40_frames(tiny_model_path, tmp_path):
    carla = require_carla()
    server = StandinProcess("--seed", "0", "--pedestrians", "0")
    try:
        game = launch_drive(server.port, server.tm_port, tiny_model_path, tmp_path / "rec", "--frames", "40",
                            "--autopilot")
        out, err = game.communicate(timeout=120)
        assert game.returncode == 0, err[-3000:]
        assert f" at 127.0.0.1:{server.port}, map " in out and "recorded 40 frames" in out
        frames = recorded_frames(tmp_path / "rec")
        assert len(frames) == 40
        session = json.loads(next((tmp_path / "rec").glob("*/session.json")).read_text())
        assert "carla" in json.dumps(session)
        world = carla.Client("127.0.0.1", server.port).get_world()
        assert not world.get_settings().synchronous_mode  # the game's exit restored the server
        assert [a.type_id for a in world.get_actors()] == ["spectator"]
    finally:
        assert server.stop() == 0
    assert not server.errors(), "".join(server.errors())
