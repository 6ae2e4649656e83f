"""The note a drive keeps of what it changed on a CARLA server, so that a drive killed without its
teardown (SIGKILL, a crash in libcarla) does not leave the server frozen for good.

CARLA keeps a synchronous world waiting for ``world.tick()`` from a client. When the client that
switched synchronous mode on dies, the world stops, with its car and cameras still in it, and the next
client reads that frozen state as "the original settings". So a drive keeps one note per server,
``<cache>/carla-settings/<machine>_<server>_<port>.json``: the settings it found, the ones it applied
and the actors it spawned. Beside it, ``.lock`` is held under an OS file lock (flock on POSIX,
msvcrt.locking on Windows) for as long as the drive runs. The OS drops the lock when the process
ends however it ends, so:
- a lock that cannot be taken belongs to a running drive: a second drive is refused (both would
  tick one world);
- a note whose lock can be taken was left by a drive that ended without putting the settings back:
  the next drive (CarlaSource) restores them and removes its actors.
A clean teardown removes the note once the settings are back. Losing the note (an unwritable cache)
costs only this recovery, so it is logged and the drive goes on.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from carla_bridge.core.files import cache_folder, write_atomic
from carla_bridge.core.values import is_real

if os.name == "nt":
    import msvcrt
else:
    import fcntl

log = logging.getLogger("carla_bridge.client.recovery")


def note_folder() -> Path:
    """carla-settings/ in the project's cache folder."""
    return cache_folder() / "carla-settings"


def settings_fields(settings: Any) -> dict[str, Any]:
    """The two fields of a carla.WorldSettings a drive changes; the rest stays as the server has it."""
    delta = settings.fixed_delta_seconds
    return {"synchronous_mode": bool(settings.synchronous_mode),
            "fixed_delta_seconds": None if delta is None else round(float(delta), 9)}  # as compared


def describe(fields: dict[str, Any]) -> str:
    """'synchronous, fixed delta 0.05 s' or 'asynchronous, variable delta'."""
    delta = fields["fixed_delta_seconds"]
    return ("synchronous, " if fields["synchronous_mode"] else "asynchronous, ") + (
        "variable delta" if delta is None else f"fixed delta {delta:g} s")


class ServerBusy(RuntimeError):
    """A running drive on this machine holds the server."""


@dataclass
class LeftBehind:
    """The note of a drive that ended without putting the server's settings back."""

    who: str
    original: dict[str, Any]
    applied: dict[str, Any]
    actors: list[tuple[int, str]]  # (id, type_id), in spawn order


class DriveNote:
    """One drive's note for one server: ``claim`` before changing anything, ``take`` just before the
    settings are applied, ``add_actor`` after each spawn, ``release`` at the end of the teardown."""

    def __init__(self, host: str, port: int) -> None:
        self.where = f"{host}:{port}"
        self.path = note_folder() / f"{_safe(socket.gethostname())}_{_server_key(host)}_{port}.json"
        self._lock: BinaryIO | None = None
        self._note: dict[str, Any] | None = None

    def claim(self) -> LeftBehind | None:
        """Take the server's lock; returns what a drive that died left, if one did. Raises ServerBusy
        when a running drive holds the lock."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(self.path.with_suffix(".lock"), "a+b")
        except OSError as error:
            log.warning("could not open %s (%s): if this drive dies without its teardown, the next one "
                        "cannot clean up after it", self.path.with_suffix(".lock"), error)
            return None
        try:
            if os.name == "nt":
                msvcrt.locking(lock.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):  # POSIX EWOULDBLOCK, Windows EACCES: held
            lock.close()
            holder = self._read()
            raise ServerBusy(f"another drive ({holder.who if holder else 'pid ?'}) is driving the CARLA server "
                             f"at {self.where}: two drives would both tick its world; stop that one first, or "
                             f"drive another server (--port)") from None
        self._lock = lock
        return self._read()

    def check_in(self, world: Any, client: Any, carla: Any, sync: bool, delta_s: float) -> tuple[Any, Any]:
        """Claim the server for a drive: (original, settings), the carla.WorldSettings to restore at its
        end and the ones to apply now. Raises ServerBusy when a running drive holds the server."""
        left = self.claim()
        original = world.get_settings()
        if left is not None:
            clean_up_after(left, original, world, client, carla, self.where)
        settings = world.get_settings()
        settings.synchronous_mode, settings.fixed_delta_seconds = sync, delta_s
        self.take(original, settings)  # before they are applied: a kill during apply_settings leaves the note
        return original, settings

    def take(self, original: Any, applied: Any) -> None:
        """Write the note of a drive about to apply ``applied`` over ``original`` (carla.WorldSettings)."""
        self._note = {"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "server": self.where,
                      "original": settings_fields(original), "applied": settings_fields(applied), "actors": []}
        self._write()

    def add_actor(self, actor: Any) -> None:
        if self._note is not None:
            self._note["actors"].append({"id": actor.id, "type_id": actor.type_id})
            self._write()

    @property
    def written(self) -> bool:
        """Whether the next drive will find this drive's note."""
        return self._note is not None

    def release(self, restored: bool) -> None:
        """Let go of the server; with ``restored`` (its settings are back) the note goes too."""
        if restored and self._lock is not None:
            self.path.unlink(missing_ok=True)
            self._note = None
        if self._lock is not None:
            if os.name == "nt":
                self._lock.seek(0)
                msvcrt.locking(self._lock.fileno(), msvcrt.LK_UNLCK, 1)
            self._lock.close()  # POSIX: closing the only descriptor drops the flock
            self._lock = None

    def _write(self) -> None:
        if self._lock is None:  # the cache cannot be used: claim said so
            self._note = None
            return
        try:
            write_atomic(self.path, (json.dumps(self._note, indent=1) + "\n").encode())
        except OSError as error:
            log.warning("could not write %s (%s): if this drive dies without its teardown, the server stays %s",
                        self.path, error, describe(self._note["applied"]))
            self._note = None

    def _read(self) -> LeftBehind | None:
        """The note on disk, checked here where it is read; None when there is none or it is damaged."""
        try:
            note = json.loads(self.path.read_text(encoding="utf-8"))
            return LeftBehind(f"pid {int(note['pid'])}, since {note['started']}", _checked(note["original"]),
                              _checked(note["applied"]), [(int(a["id"]), str(a["type_id"])) for a in note["actors"]])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:  # ValueError: not UTF-8 or not JSON
            log.warning("ignored %s: damaged (%s)", self.path, error)
            return None


def _checked(fields: dict[str, Any]) -> dict[str, Any]:
    sync, delta = fields["synchronous_mode"], fields["fixed_delta_seconds"]
    if not isinstance(sync, bool) or not (delta is None or is_real(delta, finite=True) and delta > 0):
        raise ValueError(f"settings {fields!r}")
    return {"synchronous_mode": sync, "fixed_delta_seconds": None if delta is None else float(delta)}


def _server_key(host: str) -> str:
    """One note per server however it is named: every loopback name and address ('localhost',
    '127.0.0.1', '::1') is 'localhost'; others go by their first address. The host resolves: the
    source checked that before it got here."""
    addresses = sorted({info[4][0].split("%")[0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)})
    if any(ipaddress.ip_address(address).is_loopback for address in addresses):
        return "localhost"
    return _safe(addresses[0])


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in name.lower())


def clean_up_after(left: LeftBehind, original: Any, world: Any, client: Any, carla: Any, where: str) -> None:
    """After a drive that died without its teardown: when the world is the one it left (every actor its
    note lists is there with the same id and type, since a restarted server reuses ids; one killed
    before it spawned any leaves only its settings to go by), destroy those actors and, if the settings
    (``original``, carla.WorldSettings as this drive found them) are still the ones it applied, set them
    to the ones it found: this drive's teardown restores those."""
    found = {}
    if left.actors:
        found = {actor.id: actor.type_id for actor in world.get_actors([i for i, _ in left.actors])}
    theirs = [(i, t) for i, t in left.actors if found.get(i) == t]
    if len(theirs) < len(left.actors):
        if theirs:
            log.warning("the world at %s changed since a drive ended without its teardown (%s): %s may be its "
                        "actors; not removed", where, left.who, ", ".join(f"{t} ({i})" for i, t in theirs))
        return
    if theirs:
        failed = destroy_actors(client, carla, theirs[::-1])  # cameras first, then the car they are on
        for failure in failed:
            log.warning("could not destroy %s", failure)
        gone = [f"{t} ({i})" for i, t in theirs if not any(f.startswith(f"{t} ({i}):") for f in failed)]
        if gone:
            log.warning("destroyed what that drive left in the world: %s", ", ".join(gone))
    if settings_fields(original) != left.applied:
        return  # set by hand since (CARLA's config.py --no-sync, say): those stay
    log.warning("the CARLA server at %s is still %s from a drive that did not end cleanly (%s): the settings "
                "from before it (%s) will be restored when this one ends", where, describe(left.applied), left.who,
                describe(left.original))
    original.synchronous_mode = left.original["synchronous_mode"]
    original.fixed_delta_seconds = left.original["fixed_delta_seconds"]


def destroy_actors(client: Any, carla: Any, actors: list[tuple[int, str]]) -> list[str]:
    """Destroy ``actors`` (id, type_id), in order, by one batch of commands; returns what could not be
    destroyed, and why. Not ``actor.destroy()``: it asks this client's copy of the world first, which
    lags the server until a tick's snapshot reaches it (and never comes for a client that joined a
    frozen world); for an actor the copy does not list yet it sends nothing."""
    try:
        responses = client.apply_batch_sync([carla.command.DestroyActor(i) for i, _ in actors], False)
    except RuntimeError as error:
        return [f"{t} ({i}): {error}" for i, t in actors]
    return [f"{t} ({i}): {r.error}" for (i, t), r in zip(actors, responses) if r.error]
