"""launch.py as a person runs it (subprocesses): --help, argparse errors, a headless drive with a
screenshot, the no-display fallback, and a clean exit on SIGTERM / Ctrl+C that finalizes a recording."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.game import RES, tiny_model_path  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
LAUNCH = [sys.executable, str(REPO / "launch.py")]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def _drive_flags(model: Path) -> list[str]:
    return ["--source", "procedural", "--model", str(model), "--res", RES, "--window", "192x64",
            "--backend", "torch", "--device", "cpu"]


def test_help_reads_well_and_lists_keys():
    result = subprocess.run([*LAUNCH, "--help"], capture_output=True, text=True, timeout=60, env=_env())
    assert result.returncode == 0
    assert "keys (in the window):" in result.stdout and "Backspace" in result.stdout
    assert "--source {auto,procedural,carla,replay}" in result.stdout
    assert "pygame" not in result.stdout.lower()  # no library banner


def test_version_and_the_other_commands_are_in_reach():
    import tomllib

    from game.startup.cli import VERSION

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert VERSION == project["version"]
    result = subprocess.run([*LAUNCH, "--version"], capture_output=True, text=True, timeout=60, env=_env())
    assert result.returncode == 0 and result.stdout == f"launch.py (neural-drive) {VERSION}\n"
    epilog = subprocess.run([*LAUNCH, "--help"], capture_output=True, text=True, timeout=60,
                            env=_env()).stdout.split("other commands (each has --help):\n")[1]
    for command in ("carla_bridge.standin", "neural_render.train", "neural_render.evaluate",
                    "carla_bridge.session sessions/<stamp> --load"):
        assert f"python -m {command}" in epilog


def test_bad_flag_is_an_argparse_error():
    result = subprocess.run([*LAUNCH, "--window", "1x1"], capture_output=True, text=True, timeout=60, env=_env())
    assert result.returncode == 2 and "argument --window:" in result.stderr


def test_no_display_falls_back_to_headless(tiny_model_path, tmp_path):
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [*LAUNCH, *_drive_flags(tiny_model_path), "--frames", "3", "--screenshot", str(shot)],
        capture_output=True, text=True, timeout=120, env=_env(), cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "no display found" in result.stdout and "running headless" in result.stdout
    assert "3 ticks" in result.stdout and shot.stat().st_size > 100


@pytest.mark.parametrize("sig, said", [(signal.SIGTERM, "SIGTERM: closing"), (signal.SIGINT, "Ctrl+C: closing")])
def test_signal_closes_cleanly_and_finalizes_the_recording(tiny_model_path, tmp_path, sig, said):
    process = subprocess.Popen(
        [*LAUNCH, *_drive_flags(tiny_model_path), "--headless", "--record", "sessions"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list((tmp_path / "sessions").glob("*/frames.jsonl")):
            time.sleep(0.2)
        time.sleep(1.0)  # let it drive a few ticks
        process.send_signal(sig)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert said in out and "recorded" in out
    from carla_bridge.session import ReplaySource

    (session,) = (tmp_path / "sessions").iterdir()
    with ReplaySource(session) as replay:
        assert len(replay) >= 1
