"""What the HUD says (game.app.status): a replay shows the recorded autopilot."""

from __future__ import annotations

import json

import pytest

pygame = pytest.importorskip("pygame")

from support.game import headless_env, make_app, recorded, tiny_model_path  # noqa: E402,F401 (fixtures)


def test_replay_hud_shows_the_recorded_autopilot(recorded, make_app):

    records = [json.loads(line) for line in (recorded / "frames.jsonl").read_text().splitlines()]
    assert records[-1]["autopilot"] is True
    app = make_app("--headless", "--source", "replay", "--replay", str(recorded))
    assert not app.keyboard.autopilot  # the keyboard drives nothing in a replay
    while app.tick():
        pass
    # The control bars came from the recording, the autopilot line from the idle keyboard: "off".
    assert app.frame.ego.control.autopilot and app.hud_lines(app.frame)[-1].startswith("autopilot on")
