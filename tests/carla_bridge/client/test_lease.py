"""The notes a CarlaSource keeps on disk while it drives (carla_bridge.client.lease): which drives a new
one takes for dead (reaped, zombie, pid reused) or live (refused), notes from other machines and from
this process left alone, the proof that a world is the one a dead drive left (its actors as spawned),
the lock that keeps two starting drives apart, one folder per server however it is named, and damaged
or unwritable notes that never stop a drive."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest
from support.carla import who_held_first

from carla_bridge.client import lease as server_lease
from carla_bridge.client.liveness import proc_stat, process_start
from carla_bridge.client.lease import ServerBusy, ServerLease, actors_as_spawned, lease_folder

ASYNC = {"synchronous_mode": False, "fixed_delta_seconds": None}
SYNC = {"synchronous_mode": True, "fixed_delta_seconds": 0.05}


def _settings(fields: dict) -> SimpleNamespace:
    """A carla.WorldSettings stand-in with those fields."""
    return SimpleNamespace(**fields)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    return tmp_path


def _actor(actor_id, type_id, role="hero", parent=None):
    return SimpleNamespace(id=actor_id, type_id=type_id, attributes={"role_name": role},
                           parent=None if parent is None else SimpleNamespace(id=parent))


EGO = _actor(24, "vehicle.tesla.model3")
CAMERA = _actor(25, "sensor.camera.semantic_segmentation", role="front", parent=24)


def _note_of(pid: int, *actors, process_start=None, **fields) -> ServerLease:
    """A note written as the drive `pid` would have written it."""
    lease = ServerLease("127.0.0.1", 2000)
    lease.take(_settings(ASYNC), _settings(SYNC))
    lease.add_actors(*actors)
    note = json.loads(lease.path.read_text())
    note.update(pid=pid, process_start=process_start, **fields)
    path = lease.folder / f"{note['machine']}_{pid}.json"
    path.write_text(json.dumps(note))
    lease.path.unlink()
    return lease


def _reaped_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_drive_s_note_is_written_step_by_step_and_removed_on_release(cache):
    lease = ServerLease("LocalHost", 2000)
    lease.take(_settings(ASYNC), _settings(SYNC))
    lease.add_actors(EGO, CAMERA)
    assert lease.path.parent == lease_folder() / "localhost_2000" and lease_folder() == cache / "carla-settings"
    note = json.loads(lease.path.read_text())
    assert note["pid"] == os.getpid() and note["original"] == ASYNC and note["applied"] == SYNC
    assert note["actors"] == [{"id": 24, "type_id": "vehicle.tesla.model3", "role_name": "hero", "parent_id": 0},
                              {"id": 25, "type_id": "sensor.camera.semantic_segmentation", "role_name": "front",
                               "parent_id": 24}]
    assert not list(lease.folder.glob("*.partial"))
    lease.release()
    assert not lease.path.exists()
    lease.release()  # twice is fine


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "::1", "127.0.0.2", "LOCALHOST"])
def test_every_loopback_name_shares_one_folder(name):
    # glibc lists ::1 first for localhost on most distributions: taking the first address split them
    assert server_lease._server_key(name) == "localhost"


def test_a_name_that_does_not_resolve_is_kept_as_a_safe_folder_name():
    assert server_lease._server_key("no-such-host.invalid") == "no-such-host.invalid"
    assert server_lease._server_key("a/b c") == "a_b_c"


def test_a_dead_drive_s_note_is_handed_over(cache):
    pid = _reaped_pid()
    lease = _note_of(pid, EGO, CAMERA)
    (left,) = lease.check_in()
    assert left.pid == pid and left.original == ASYNC and left.applied == SYNC
    assert [entry["id"] for entry in left.actors] == [24, 25]
    lease.retire(left)
    assert not left.path.exists()


def test_a_live_drive_on_this_machine_makes_the_server_busy(cache):
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            lease = _note_of(other.pid, process_start=process_start(other.pid))
            with pytest.raises(ServerBusy, match=f"another drive \\(pid {other.pid}, since .*\\) is driving the "
                                                 f"CARLA server at 127.0.0.1:2000.*--port"):
                lease.check_in()
        finally:
            other.kill()


def test_a_killed_drive_not_yet_reaped_is_dead(cache):
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        start = process_start(other.pid)
        other.send_signal(signal.SIGKILL)
        for _ in range(200):  # until the kernel has made it a zombie (we do not wait() for it)
            stat = proc_stat(other.pid)
            if stat is None or stat[0] == "Z":
                break
            os.sched_yield()
        lease = _note_of(other.pid, process_start=start)
        assert [left.pid for left in lease.check_in()] == [other.pid]


def test_a_pid_given_to_another_process_since_is_dead(cache):
    parent = os.getppid()  # alive, but started at another time than the drive the note names
    start = process_start(parent)
    if start is None:
        pytest.skip("no /proc here: liveness is by pid alone")
    lease = _note_of(parent, process_start=start + 1)
    assert [left.pid for left in lease.check_in()] == [parent]


def test_a_note_of_another_source_in_this_process_is_neither_busy_nor_dead(cache):
    first = ServerLease("127.0.0.1", 2000)
    first.take(_settings(ASYNC), _settings(SYNC))
    second = ServerLease("127.0.0.1", 2000)
    assert second.path != first.path and second.check_in() == []  # was: one file for both, either release
    second.take(_settings(SYNC), _settings(SYNC))                   # deleted the other's note
    second.release()
    assert first.path.exists()


def test_a_drive_starting_beside_another_waits_for_its_note(cache):
    """check_in to take is one claim: two drives started together both found no live note."""
    first, second = ServerLease("127.0.0.1", 2000), ServerLease("127.0.0.1", 2000)
    assert who_held_first(first.claim(), second.claim) == ["first", "second"]


def test_a_note_from_another_machine_is_left_alone(cache, caplog):
    lease = _note_of(_reaped_pid(), EGO, machine="labbox2")
    with caplog.at_level(logging.WARNING, "carla_bridge.client.lease"):
        assert lease.check_in() == []
    assert "a note of a drive on labbox2" in caplog.text and "left alone" in caplog.text
    assert len(list(lease.folder.glob("*.json"))) == 1


@pytest.mark.parametrize("damage", [
    b"\xff\xfe garbage", b"{not json", b"[1, 2]", b'{"pid": 5}',
    {"original": {"synchronous_mode": False, "fixed_delta_seconds": "x"}},
    {"applied": {"synchronous_mode": "yes", "fixed_delta_seconds": 0.05}},
    {"actors": [{"id": 99999999999999, "type_id": "vehicle.a", "role_name": "hero", "parent_id": 0}]},
    {"actors": [{"id": 24, "type_id": "vehicle.a"}]},
], ids=["not-utf8", "not-json", "not-object", "no-machine", "delta", "sync", "actor-id", "actor-fields"])
def test_a_damaged_note_is_removed_with_a_warning(cache, caplog, damage):
    lease = _note_of(_reaped_pid())
    (path,) = lease.folder.glob("*.json")
    if isinstance(damage, bytes):
        path.write_bytes(damage)
    else:
        path.write_text(json.dumps({**json.loads(path.read_text()), **damage}))
    with caplog.at_level(logging.WARNING, "carla_bridge.client.lease"):
        assert lease.check_in() == []
    assert f"removed {path}: damaged" in caplog.text
    assert not path.exists()


def test_an_unwritable_cache_costs_only_the_note(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(blocker))  # carla-settings cannot be made under a file
    lease = ServerLease("127.0.0.1", 2000)
    with caplog.at_level(logging.WARNING, "carla_bridge.client.lease"):
        assert lease.check_in() == []
        lease.take(_settings(ASYNC), _settings(SYNC))
        lease.add_actors(EGO)
        lease.release()
    assert "stays synchronous, fixed delta 0.05 s" in caplog.text
    assert caplog.text.count("could not write") == 1  # said once, not once per actor


def _left(**fields):
    base = dict(path=None, pid=1, started="?", original=ASYNC, applied=SYNC, actors=[server_lease._actor_entry(EGO), server_lease._actor_entry(CAMERA)])
    return server_lease.LeftBehind(**{**base, **fields})


def test_the_actors_prove_it_only_when_every_one_is_as_spawned():
    found = {24: EGO, 25: CAMERA}
    assert actors_as_spawned(_left(), found)
    assert not actors_as_spawned(_left(), {24: EGO})  # a camera gone
    # a restarted server reused the ids: same car type, but another client's role name or camera mount
    assert not actors_as_spawned(_left(), {24: _actor(24, "vehicle.tesla.model3", role="autopilot"), 25: CAMERA})
    assert not actors_as_spawned(_left(), {24: EGO, 25: _actor(25, "sensor.camera.semantic_segmentation",
                                                               role="front", parent=31)})
    assert not actors_as_spawned(_left(actors=[]), found)


def test_a_dead_drive_s_actors_go_cameras_first(caplog):
    from carla_bridge.client.takeover import destroy_left_actors

    sent = []

    def apply_batch_sync(commands, due_tick):
        sent.extend(commands)
        return [SimpleNamespace(error="" if actor_id != 99 else "actor 99 not found") for _, actor_id in commands]

    client = SimpleNamespace(apply_batch_sync=apply_batch_sync)
    carla = SimpleNamespace(command=SimpleNamespace(DestroyActor=lambda i: ("destroy", i)))
    gone_already = server_lease._actor_entry(_actor(99, "sensor.camera.rgb", role="front", parent=24))
    left = _left(actors=[*_left().actors, gone_already])
    with caplog.at_level(logging.WARNING, "carla_bridge"):
        destroy_left_actors(client, carla, left)
    assert sent == [("destroy", 99), ("destroy", 25), ("destroy", 24)]
    assert "destroyed what that drive left in the world: vehicle.tesla.model3 (24), " \
           "sensor.camera.semantic_segmentation (25)" in caplog.text
    assert "could not destroy sensor.camera.rgb (99): actor 99 not found" in caplog.text


@pytest.mark.parametrize("listed, found, adopted", [
    ([], {}, ASYNC),  # killed before it spawned anything: its settings, still exactly there, are all to go by
    ("ego+camera", {24: EGO, 25: CAMERA}, ASYNC),  # its actors as spawned
    ("ego+camera", {}, None),  # a restarted server someone set to the same settings: not that drive's world
], ids=["nothing-spawned", "as-spawned", "actors-gone"])
def test_a_dead_drive_s_settings_are_taken_over_only_in_its_world(listed, found, adopted, monkeypatch):
    from carla_bridge.client import takeover as carla_takeover

    actors = _left().actors if listed else []
    monkeypatch.setattr(carla_takeover, "find_actors", lambda world, left: found)
    monkeypatch.setattr(carla_takeover, "destroy_left_actors", lambda client, carla, left: None)
    current = SimpleNamespace(synchronous_mode=True, fixed_delta_seconds=0.05)
    assert carla_takeover.take_over(None, None, None, "127.0.0.1:2000", [_left(actors=actors)], current) == adopted
