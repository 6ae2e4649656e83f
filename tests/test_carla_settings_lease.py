"""The settings note a CarlaSource leaves on disk while it drives (carla_bridge.settings_lease): what
the next session makes of it when the session that wrote it died, is still running, or left a world
that has changed since; and that a damaged or unwritable note never stops a drive."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from types import SimpleNamespace

import pytest

from carla_bridge.settings_lease import SettingsLease, lease_folder

ASYNC = SimpleNamespace(synchronous_mode=False, fixed_delta_seconds=None)
SYNC = SimpleNamespace(synchronous_mode=True, fixed_delta_seconds=0.05)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    return tmp_path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _rewrite(lease: SettingsLease, **fields) -> None:
    note = json.loads(lease.path.read_text())
    note.update(fields)
    lease.path.write_text(json.dumps(note))


def test_the_note_lives_under_the_cache_and_is_gone_after_release(cache):
    lease = SettingsLease("LocalHost", 2000)
    lease.take(ASYNC, SYNC)
    assert lease.path == lease_folder() / "localhost_2000.json" and lease.path.parent == cache / "carla-settings"
    note = json.loads(lease.path.read_text())
    assert note["original"] == {"synchronous_mode": False, "fixed_delta_seconds": None}
    assert note["applied"] == {"synchronous_mode": True, "fixed_delta_seconds": 0.05}
    assert not list(lease.path.parent.glob("*.partial"))
    lease.release()
    assert not lease.path.exists()
    lease.release()  # twice is fine


def test_a_dead_session_s_original_settings_are_adopted(cache, caplog):
    lease = SettingsLease("127.0.0.1", 2000)
    lease.take(ASYNC, SYNC)
    _rewrite(lease, pid=_dead_pid())
    with caplog.at_level(logging.WARNING, "carla_bridge.settings_lease"):
        adopted = lease.adopt(SimpleNamespace(synchronous_mode=True, fixed_delta_seconds=0.05))
    assert adopted == {"synchronous_mode": False, "fixed_delta_seconds": None}
    assert "did not end cleanly" in caplog.text
    assert "synchronous, fixed delta 0.05 s" in caplog.text and "asynchronous, variable delta" in caplog.text
    assert lease.path.exists()  # kept until this session has restored them


def test_a_world_changed_since_makes_the_note_stale(cache):
    lease = SettingsLease("127.0.0.1", 2000)
    lease.take(ASYNC, SYNC)
    _rewrite(lease, pid=_dead_pid())
    assert lease.adopt(SimpleNamespace(synchronous_mode=True, fixed_delta_seconds=0.1)) is None
    assert not lease.path.exists()
    lease.take(ASYNC, SYNC)
    _rewrite(lease, pid=_dead_pid())
    assert lease.adopt(ASYNC) is None  # the server was restarted
    assert not lease.path.exists()


def test_a_running_session_s_note_is_left_alone(cache, caplog):
    lease = SettingsLease("127.0.0.1", 2000)
    lease.take(ASYNC, SYNC)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            _rewrite(lease, pid=other.pid)
            with caplog.at_level(logging.WARNING, "carla_bridge.settings_lease"):
                assert lease.adopt(SYNC) is None
        finally:
            other.kill()
    assert f"another session (pid {other.pid}" in caplog.text
    assert lease.path.exists()


def test_a_note_from_another_machine_is_adopted(cache):
    lease = SettingsLease("carla-box", 2000)
    lease.take(ASYNC, SYNC)
    _rewrite(lease, machine="some-other-host", pid=1)  # pid 1 is alive here, but not that machine's
    assert lease.adopt(SYNC) == {"synchronous_mode": False, "fixed_delta_seconds": None}


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"pid": 5}'], ids=["not-json", "not-object", "fields"])
def test_a_damaged_note_is_removed_with_a_warning(cache, caplog, text):
    lease = SettingsLease("127.0.0.1", 2000)
    lease.path.parent.mkdir(parents=True)
    lease.path.write_text(text)
    with caplog.at_level(logging.WARNING, "carla_bridge.settings_lease"):
        assert lease.adopt(SYNC) is None
    assert str(lease.path) in caplog.text
    assert not lease.path.exists()


def test_an_unwritable_cache_costs_only_the_note(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(blocker))  # carla-settings cannot be made under a file
    lease = SettingsLease("127.0.0.1", 2000)
    with caplog.at_level(logging.WARNING, "carla_bridge.settings_lease"):
        lease.take(ASYNC, SYNC)
        lease.release()
    assert "could not write" in caplog.text and "stays synchronous, fixed delta 0.05 s" in caplog.text
