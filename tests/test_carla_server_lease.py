"""The settings note a CarlaSource leaves on disk while it drives (carla_bridge.server_lease): what
the next session makes of it when the session that wrote it died, is still running, or left a world
that has changed since; and that a damaged or unwritable note never stops a drive."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from types import SimpleNamespace

import pytest

from carla_bridge.server_lease import ServerLease, lease_folder

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


def _rewrite(lease: ServerLease, **fields) -> None:
    note = json.loads(lease.path.read_text())
    note.update(fields)
    lease.path.write_text(json.dumps(note))


def test_the_note_lives_under_the_cache_and_is_gone_after_release(cache):
    lease = ServerLease("LocalHost", 2000)
    lease.take(ASYNC, SYNC)
    assert lease.path.parent == lease_folder() == cache / "carla-settings"
    assert lease.path.name in ("127.0.0.1_2000.json", "__1_2000.json")  # one note however the host is named
    note = json.loads(lease.path.read_text())
    assert note["original"] == {"synchronous_mode": False, "fixed_delta_seconds": None}
    assert note["applied"] == {"synchronous_mode": True, "fixed_delta_seconds": 0.05}
    assert not list(lease.path.parent.glob("*.partial"))
    lease.release()
    assert not lease.path.exists()
    lease.release()  # twice is fine


def test_a_dead_session_s_settings_and_actors_are_adopted(cache, caplog):
    lease = ServerLease("127.0.0.1", 2000)
    lease.take(ASYNC, SYNC)
    lease.add_actors(SimpleNamespace(id=24, type_id="vehicle.tesla.model3"))
    lease.add_actors(SimpleNamespace(id=25, type_id="sensor.camera.semantic_segmentation"))
    _rewrite(lease, pid=_dead_pid())
    with caplog.at_level(logging.WARNING, "carla_bridge.server_lease"):
        left = ServerLease("127.0.0.1", 2000).adopt(SimpleNamespace(synchronous_mode=True, fixed_delta_seconds=0.05))
    assert left.original == {"synchronous_mode": False, "fixed_delta_seconds": None}
    assert left.actors == [(24, "vehicle.tesla.model3"), (25, "sensor.camera.semantic_segmentation")]
    assert "did not end cleanly" in caplog.text
    assert "synchronous, fixed delta 0.05 s" in caplog.text and "asynchronous, variable delta" in caplog.text
    assert lease.path.exists()  # kept until this session has restored them


def test_a_world_changed_since_makes_the_note_stale(cache):
    lease = ServerLease("127.0.0.1", 2000)
    lease.take(ASYNC, SYNC)
    _rewrite(lease, pid=_dead_pid())
    assert lease.adopt(SimpleNamespace(synchronous_mode=True, fixed_delta_seconds=0.1)) is None
    assert not lease.path.exists()
    lease.take(ASYNC, SYNC)
    _rewrite(lease, pid=_dead_pid())
    assert lease.adopt(ASYNC) is None  # the server was restarted
    assert not lease.path.exists()


def test_a_running_session_s_note_is_left_alone(cache, caplog):
    lease = ServerLease("127.0.0.1", 2000)
    lease.take(ASYNC, SYNC)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            _rewrite(lease, pid=other.pid)
            with caplog.at_level(logging.WARNING, "carla_bridge.server_lease"):
                assert lease.adopt(SYNC) is None
        finally:
            other.kill()
    assert f"another session (pid {other.pid}" in caplog.text
    assert lease.path.exists()


def test_a_note_from_another_machine_is_adopted(cache):
    lease = ServerLease("carla-box", 2000)
    lease.take(ASYNC, SYNC)
    _rewrite(lease, machine="some-other-host", pid=1)  # pid 1 is alive here, but not that machine's
    assert lease.adopt(SYNC).original == {"synchronous_mode": False, "fixed_delta_seconds": None}


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"pid": 5}'], ids=["not-json", "not-object", "fields"])
def test_a_damaged_note_is_removed_with_a_warning(cache, caplog, text):
    lease = ServerLease("127.0.0.1", 2000)
    lease.path.parent.mkdir(parents=True)
    lease.path.write_text(text)
    with caplog.at_level(logging.WARNING, "carla_bridge.server_lease"):
        assert lease.adopt(SYNC) is None
    assert str(lease.path) in caplog.text
    assert not lease.path.exists()


def test_an_unwritable_cache_costs_only_the_note(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(blocker))  # carla-settings cannot be made under a file
    lease = ServerLease("127.0.0.1", 2000)
    with caplog.at_level(logging.WARNING, "carla_bridge.server_lease"):
        lease.take(ASYNC, SYNC)
        lease.add_actors(SimpleNamespace(id=24, type_id="vehicle.tesla.model3"))
        lease.release()
    assert "stays synchronous, fixed delta 0.05 s" in caplog.text
    assert caplog.text.count("could not write") == 1  # said once, not once per actor


def test_only_the_dead_session_s_own_actors_are_destroyed(caplog):
    """An id that now belongs to another type (a restarted episode reuses ids) is left alone; cameras
    go before the car they hang on."""
    from carla_bridge.carla_source import CarlaSource

    destroyed = []

    def actor(actor_id, type_id):
        return SimpleNamespace(id=actor_id, type_id=type_id, destroy=lambda: destroyed.append(actor_id) or True)

    world = SimpleNamespace(get_actors=lambda ids: [actor(24, "vehicle.tesla.model3"), actor(25, "walker.pedestrian.0001"),
                                                    actor(26, "sensor.camera.depth")])
    left = [(24, "vehicle.tesla.model3"), (25, "sensor.camera.semantic_segmentation"), (26, "sensor.camera.depth"),
            (27, "sensor.camera.rgb")]  # 27: gone already
    with caplog.at_level(logging.WARNING, "carla_bridge"):
        CarlaSource._destroy_left_actors(SimpleNamespace(world=world), left)
    assert destroyed == [26, 24]
    assert "vehicle.tesla.model3 (24), sensor.camera.depth (26)" in caplog.text
