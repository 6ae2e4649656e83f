"""launch.py with MCAP (subprocesses, as a person runs it): a drive recording straight into MCAP and
killed with SIGKILL leaves a readable file, and --live foxglove delivers a tick's messages to a real
WebSocket client on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time

import pytest

from support.foxglove_ws import SUBPROTOCOL, data_message, subscribe_all
from support.game import tiny_model_path  # noqa: F401
from test_launch import LAUNCH, _drive_flags, _env

pytestmark = pytest.mark.slow


def _stop(process: subprocess.Popen, sig: int) -> str:
    try:
        process.send_signal(sig)
        out, _ = process.communicate(timeout=60)
        return out
    finally:
        if process.poll() is None:
            process.kill()


def test_a_killed_mcap_recording_is_readable(tiny_model_path, tmp_path):
    from carla_bridge.session import ReplaySource

    process = subprocess.Popen(
        [*LAUNCH, *_drive_flags(tiny_model_path), "--headless", "--record", "sessions", "--record-format", "mcap"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            files = list((tmp_path / "sessions").glob("*.mcap"))
            if files and files[0].stat().st_size > 3 << 20:  # three 1 MiB chunks on disk
                break
            time.sleep(0.1)
    finally:
        out = _stop(process, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL, out
    (session,) = (tmp_path / "sessions").glob("*.mcap")
    with ReplaySource(session) as replay:
        assert len(replay) >= 3 * 20  # a 64x32 tick is 37 kB: 28 in a chunk
        assert replay.meta["closed"] is False and "cut off" in replay.notes[0]
        frames = list(replay)
    assert [frame.index for frame in frames] == sorted(frame.index for frame in frames)


def test_the_live_view_serves_a_real_websocket_client(tiny_model_path, tmp_path):
    websockets = pytest.importorskip("websockets")
    process = subprocess.Popen(
        [*LAUNCH, *_drive_flags(tiny_model_path), "--headless", "--live", "foxglove", "--live-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(), cwd=tmp_path)
    try:
        url = None
        deadline = time.monotonic() + 90
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "launch.py ended before it said where the live view is"
            found = re.search(r"live view: (ws://127\.0\.0\.1:\d+)", line)
            url = found and found.group(1)
        assert url, "no live view line"
        topics = asyncio.run(_one_tick(websockets, url))
    finally:
        _stop(process, signal.SIGTERM)
    assert {"/labels/ids", "/labels/colour", "/flow", "/render", "/engine", "/ego", "/control", "/timings",
            "/frame"} <= topics


async def _one_tick(websockets, url: str) -> set[str]:
    """The topics of one whole tick: the messages after a /frame up to the next (a client may join mid-tick)."""
    async with websockets.connect(url, subprotocols=[SUBPROTOCOL]) as client:
        topics = await subscribe_all(client)
        got: list[str] = []
        while got.count("/frame") < 2:
            data = data_message(await asyncio.wait_for(client.recv(), 30), topics)
            if data:
                got.append(data[0])
        return set(got[got.index("/frame") + 1:])
