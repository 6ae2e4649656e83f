"""A drive that ended without its teardown (carla_bridge.client.recovery): the note a drive keeps
under its lock, what the next drive does with a dead drive's note, and, end to end with client
processes on the stand-in, a SIGKILLed drive cleaned up by the next one, a world someone unfroze by
hand, and a second drive refused while one runs."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from carla_bridge.client.recovery import DriveNote, LeftBehind, ServerBusy, clean_up_after, note_folder
from carla_bridge.core.frames import Control
from support.carla import REPO, StandinProcess, client, finish, standin, start_client, wait_for  # noqa: F401

ASYNC = {"synchronous_mode": False, "fixed_delta_seconds": None}
SYNC = {"synchronous_mode": True, "fixed_delta_seconds": 0.05}
EGO, CAMERA = (24, "vehicle.tesla.model3"), (25, "sensor.camera.semantic_segmentation")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))  # child processes inherit it
    return tmp_path


def _settings(fields: dict) -> SimpleNamespace:
    """A carla.WorldSettings stand-in with those fields."""
    return SimpleNamespace(**fields)


def _actor(actor_id: int, type_id: str) -> SimpleNamespace:
    return SimpleNamespace(id=actor_id, type_id=type_id)


def test_a_drive_s_note_is_written_step_by_step_and_removed_once_restored(cache):
    note = DriveNote("LocalHost", 2000)
    assert note.claim() is None
    note.take(_settings(ASYNC), _settings(SYNC))
    note.add_actor(_actor(*EGO))
    note.add_actor(_actor(*CAMERA))
    assert note.path.parent == note_folder() == cache / "carla-settings"
    written = json.loads(note.path.read_text())
    assert written["pid"] == os.getpid() and written["original"] == ASYNC and written["applied"] == SYNC
    assert written["actors"] == [{"id": 24, "type_id": "vehicle.tesla.model3"},
                                 {"id": 25, "type_id": "sensor.camera.semantic_segmentation"}]
    assert note.written
    note.release(restored=True)
    assert not note.path.exists()
    note.release(restored=True)  # twice is fine


def test_a_note_whose_settings_were_not_restored_stays_for_the_next_drive(cache):
    note = DriveNote("127.0.0.1", 2000)
    note.claim()
    note.take(_settings(ASYNC), _settings(SYNC))
    note.release(restored=False)  # the server was gone or hung: nothing could be put back
    left = DriveNote("127.0.0.1", 2000).claim()
    assert left.who.startswith(f"pid {os.getpid()}, since ") and left.original == ASYNC and left.applied == SYNC


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "::1", "127.0.0.2", "LOCALHOST"])
def test_every_loopback_name_shares_one_note(name):
    # glibc lists ::1 first for localhost on most distributions: taking the first address split them
    assert DriveNote(name, 2000).path == DriveNote("127.0.0.1", 2000).path


def test_a_running_drive_holds_the_server(cache):
    first = DriveNote("127.0.0.1", 2000)
    first.claim()
    first.take(_settings(ASYNC), _settings(SYNC))
    with pytest.raises(ServerBusy, match=f"another drive \\(pid {os.getpid()}, since .*\\) is driving the CARLA "
                                         f"server at localhost:2000.*--port"):
        DriveNote("localhost", 2000).claim()
    first.release(restored=True)
    assert DriveNote("localhost", 2000).claim() is None


KILLED_DRIVE = """
import os, signal, sys
from types import SimpleNamespace as S
from carla_bridge.core.frames import Control
from carla_bridge.client.recovery import DriveNote
note = DriveNote("127.0.0.1", 2000)
note.claim()
note.take(S(synchronous_mode=False, fixed_delta_seconds=None), S(synchronous_mode=True, fixed_delta_seconds=0.05))
note.add_actor(S(id=24, type_id="vehicle.tesla.model3"))
os.kill(os.getpid(), signal.SIGKILL)  # no teardown, no exit handlers: the OS drops the lock
"""


def test_the_note_of_a_killed_drive_is_handed_to_the_next(cache):
    killed = subprocess.Popen([sys.executable, "-c", KILLED_DRIVE], env=dict(os.environ, PYTHONPATH=str(REPO)),
                              stderr=subprocess.PIPE, text=True)
    _, err = killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL, err
    left = DriveNote("127.0.0.1", 2000).claim()
    assert left.who.startswith(f"pid {killed.pid}, since ") and (left.original, left.applied, left.actors) == (
        ASYNC, SYNC, [EGO])


@pytest.mark.parametrize("damage", [
    b"\xff\xfe garbage", b"{not json", b"[1, 2]", b'{"pid": 5}',
    {"original": {"synchronous_mode": False, "fixed_delta_seconds": "x"}},
    {"applied": {"synchronous_mode": "yes", "fixed_delta_seconds": 0.05}},
    {"actors": [{"id": 24}]},
], ids=["not-utf8", "not-json", "not-object", "no-fields", "delta", "sync", "actor-fields"])
def test_a_damaged_note_is_ignored_with_a_warning(cache, caplog, damage):
    note = DriveNote("127.0.0.1", 2000)
    note.claim()
    note.take(_settings(ASYNC), _settings(SYNC))
    note.release(restored=False)
    if isinstance(damage, bytes):
        note.path.write_bytes(damage)
    else:
        note.path.write_text(json.dumps({**json.loads(note.path.read_text()), **damage}))
    with caplog.at_level(logging.WARNING, "carla_bridge.client.recovery"):
        assert DriveNote("127.0.0.1", 2000).claim() is None
    assert f"ignored {note.path}: damaged" in caplog.text


def test_an_unwritable_cache_costs_only_the_note(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(blocker))  # carla-settings cannot be made under a file
    note = DriveNote("127.0.0.1", 2000)
    with caplog.at_level(logging.WARNING, "carla_bridge.client.recovery"):
        assert note.claim() is None
        note.take(_settings(ASYNC), _settings(SYNC))
        note.add_actor(_actor(*EGO))
        note.release(restored=True)
    assert not note.written
    assert caplog.text.count("could not open") == 1  # said once, not once per actor


class FakeServer:
    """What clean_up_after asks of a world, a client and the carla module: the actors there by id, and
    a batch of DestroyActor commands (recorded; the ids in ``missing`` answer an error)."""

    def __init__(self, actors: list[tuple[int, str]], missing: tuple[int, ...] = ()) -> None:
        self.actors, self.missing, self.sent = actors, missing, []
        self.command = SimpleNamespace(DestroyActor=lambda actor_id: ("destroy", actor_id))

    def get_actors(self, ids):
        return [_actor(i, t) for i, t in self.actors if i in ids]

    def apply_batch_sync(self, commands, due_tick):
        self.sent.extend(commands)
        return [SimpleNamespace(error=f"actor {i} not found" if i in self.missing else "") for _, i in commands]


def _clean_up(left: LeftBehind, server: FakeServer, current: dict) -> SimpleNamespace:
    found = _settings(current)
    clean_up_after(left, found, server, server, server, "127.0.0.1:2000")
    return found


def test_a_dead_drive_s_actors_go_cameras_first(caplog):
    gone_already = (99, "sensor.camera.rgb")
    server = FakeServer([EGO, CAMERA, gone_already], missing=(99,))
    with caplog.at_level(logging.WARNING, "carla_bridge"):
        _clean_up(LeftBehind("pid 1, since ?", ASYNC, SYNC, [EGO, CAMERA, gone_already]), server, SYNC)
    assert server.sent == [("destroy", 99), ("destroy", 25), ("destroy", 24)]
    assert "destroyed what that drive left in the world: vehicle.tesla.model3 (24), " \
           "sensor.camera.semantic_segmentation (25)" in caplog.text
    assert "could not destroy sensor.camera.rgb (99): actor 99 not found" in caplog.text


@pytest.mark.parametrize("listed, there, current, restored", [
    ([], [], SYNC, ASYNC),  # killed before it spawned anything: its settings, still exactly there, are all to go by
    ([EGO, CAMERA], [EGO, CAMERA], SYNC, ASYNC),  # its actors as spawned
    ([EGO, CAMERA], [], SYNC, SYNC),  # a restarted server someone set to the same settings: not that drive's world
    ([EGO, CAMERA], [(24, "vehicle.audi.a2"), CAMERA], SYNC, SYNC),  # the id reused by another car
    ([EGO, CAMERA], [EGO, CAMERA], {**SYNC, "synchronous_mode": False}, {**SYNC, "synchronous_mode": False}),
], ids=["nothing-spawned", "as-spawned", "actors-gone", "id-reused", "unfrozen-by-hand"])
def test_a_dead_drive_s_settings_are_taken_over_only_in_its_world(listed, there, current, restored):
    server = FakeServer(there)
    found = _clean_up(LeftBehind("pid 1, since ?", ASYNC, SYNC, listed), server, current)
    assert {"synchronous_mode": found.synchronous_mode, "fixed_delta_seconds": found.fixed_delta_seconds} == restored
    assert bool(server.sent) == (bool(listed) and there == listed)  # its actors removed only where provably its


def _kill_a_driving_client(server: StandinProcess) -> subprocess.Popen:
    """A client process that drives (autopilot), then SIGKILL: no teardown runs."""
    client_process = start_client(server, "ctrl-c")
    wait_for(client_process, "STARTED")
    # libcarla 0.9.16's lost wake-up (CarlaSource._advance) can hang a synchronous tick for good, about
    # once in 250 runs on a loaded box. A client killed inside that tick is as dead a drive as one
    # killed between ticks, which is all these tests need.
    wait_for(client_process, "DRIVING", hang_ok=True)
    client_process.kill()
    client_process.communicate(timeout=10)
    return client_process


def _eventually(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _put_the_world_back(world) -> None:
    """After a test that may have failed midway: the module's other tests need the world as it was."""
    settings = world.get_settings()
    settings.synchronous_mode, settings.fixed_delta_seconds = False, None
    world.apply_settings(settings)
    for actor in world.get_actors():
        if actor.type_id != "spectator":
            actor.destroy()


def test_a_killed_client_s_settings_and_actors_are_cleaned_up_by_the_next_session(
        standin, client, tmp_path, monkeypatch, caplog):
    """SIGKILL leaves no teardown: the world stays synchronous (frozen without its ticker) with the
    client's car and cameras in it. The next source at that address reads the dead drive's note,
    destroys those actors and restores the settings from before it."""
    from carla_bridge.client.source import CarlaSource

    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))  # the client process inherits it
    world = client.get_world()
    try:
        _kill_a_driving_client(standin)
        left = world.get_settings()
        assert (left.synchronous_mode, left.fixed_delta_seconds) == (True, pytest.approx(0.05))
        dead_ids = {a.id for a in world.get_actors() if a.type_id != "spectator"}
        assert len(dead_ids) == 5  # the ego and its four cameras
        with caplog.at_level(logging.WARNING, "carla_bridge"):
            source = CarlaSource(port=standin.port, tm_port=standin.tm_port, size=(64, 32), seed=6, timeout_s=5.0)
            source.reset()  # one tick: the test's client hears of that frame's actors (a moment later)
            assert _eventually(lambda: not dead_ids & {a.id for a in world.get_actors()})
            source.close()
        assert "did not end cleanly" in caplog.text and "destroyed what that drive left" in caplog.text
        restored = world.get_settings()
        assert (restored.synchronous_mode, restored.fixed_delta_seconds) == (False, None)
        assert not list((tmp_path / "carla-settings").rglob("*.json"))
        world.wait_for_tick(5.0)
        assert [a.type_id for a in world.get_actors()] == ["spectator"]
    finally:
        _put_the_world_back(world)


def test_a_world_unfrozen_by_hand_keeps_its_settings_and_loses_the_dead_drive_s_actors(
        standin, client, tmp_path, monkeypatch, caplog):
    """The usual first fix of a frozen server (CARLA's config.py --no-sync) changes the settings: the
    note's settings no longer apply, but the car and cameras are still the dead drive's, as spawned."""
    from carla_bridge.client.source import CarlaSource

    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    world = client.get_world()
    try:
        _kill_a_driving_client(standin)
        by_hand = world.get_settings()
        by_hand.synchronous_mode = False  # fixed delta 0.05 stays, as config.py --no-sync leaves it
        world.apply_settings(by_hand)
        with caplog.at_level(logging.WARNING, "carla_bridge"):
            source = CarlaSource(port=standin.port, tm_port=standin.tm_port, size=(64, 32), seed=6, timeout_s=5.0)
            source.reset()  # one tick: the test's client hears of that frame's actors (a moment later)
            assert _eventually(lambda: len([a for a in world.get_actors() if a.type_id.startswith("vehicle")]) == 1)
            assert {a.type_id.split(".")[0] for a in world.get_actors()} == {"spectator", "vehicle", "sensor"}
            source.close()
        assert "did not end cleanly" not in caplog.text and "destroyed what that drive left" in caplog.text
        after = world.get_settings()
        assert (after.synchronous_mode, after.fixed_delta_seconds) == (False, pytest.approx(0.05))
    finally:
        _put_the_world_back(world)


def test_a_second_drive_on_a_server_a_live_one_holds_is_refused(standin, client, tmp_path, monkeypatch):
    from carla_bridge.client.source import CarlaConnectionError, CarlaSource

    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    world = client.get_world()
    client_process = start_client(standin, "ctrl-c")
    try:
        wait_for(client_process, "DRIVING")
        with pytest.raises(CarlaConnectionError, match=f"another drive \\(pid {client_process.pid}, since .*\\) is "
                                                       f"driving the CARLA server at 127.0.0.1:{standin.port}"):
            CarlaSource(port=standin.port, tm_port=standin.tm_port + 7, size=(64, 32), seed=6, timeout_s=5.0)
        assert world.get_settings().synchronous_mode  # the live drive's world, untouched
        assert len([a for a in world.get_actors() if a.type_id.startswith("vehicle")]) == 1
        client_process.send_signal(signal.SIGINT)
        finish(client_process, standin, 30.0)
        assert not list((tmp_path / "carla-settings").rglob("*.json"))  # its own note, removed at its exit
    finally:
        client_process.kill()
        _put_the_world_back(world)


def test_the_next_drive_after_a_killed_one_gets_a_traffic_manager_on_the_same_port(
        standin, client, tmp_path, monkeypatch):
    """CARLA's server keeps a dead Traffic Manager registered (CarlaServer.cpp never probes it, and
    refuses a second add for its port): the next drive on that port must still drive by autopilot."""
    from carla_bridge.client.source import CarlaSource

    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    world = client.get_world()
    try:
        _kill_a_driving_client(standin)
        started = time.monotonic()
        with CarlaSource(port=standin.port, tm_port=standin.tm_port, size=(64, 32), seed=6, timeout_s=5.0) as source:
            first = source.reset()
            for _ in range(10):
                frame = source.step(Control(autopilot=True))
        assert frame.ego.speed_mps > 0.5 and frame.ego.transform != first.ego.transform
        assert time.monotonic() - started < 20.0
    finally:
        _put_the_world_back(world)
