"""Notes on disk of what a CarlaSource changed on a server (the world settings, the actors it spawned),
so a drive that dies without its teardown (SIGKILL, a segfault in libcarla, a power cut) does not
leave the server frozen for good, with its car and cameras still in the world.

CARLA keeps a synchronous world waiting for ``world.tick()`` from a client. When the client that
switched synchronous mode on dies without switching it off, the world stops; the next client (ours
or manual_control.py) reads that frozen state as "the original settings" and restores it on exit, so
the server stays stuck until someone restarts it or fixes the settings by hand. The dead client's
cameras go on rendering every tick for no one, and its car stays parked on the road.

So each drive keeps a note, ``<cache>/carla-settings/<server>/<machine>_<pid>_<n>.json``: the
settings it found, the ones it applied, and the actors it spawned. It removes the note once its
teardown has put the found settings back. A drive that starts (holding a lock on the server's folder
until its own note is written, so two drives started together cannot both pass):
- refuses a server that a live drive in another process on this machine holds (two drives would both
  tick one world);
- leaves notes from other machines alone (it cannot tell whether their drives still run);
- takes over the note of a dead drive on this machine only when the world is the one that drive left:
  its listed actors all there as they were spawned (same ids, types, role name and camera mounts; a
  restarted server reuses ids, not the whole set). Then it restores the dead drive's original settings
  when it ends, and destroys the listed actors. A drive killed before it spawned anything leaves no
  such proof: its settings are taken over when the world still has exactly them. Anything less and
  the note is dropped, touching nothing; actors that may be the dead drive's are named in a warning.
(A snapshot's frame and time cannot serve as proof: a client reads them from its own copy of the
world state, which a client that joins a frozen synchronous world never receives.)
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import logging
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carla_bridge.client.liveness import exclusive_lock, process_alive, process_start
from carla_bridge.core.values import is_real

log = logging.getLogger("carla_bridge.client.lease")

# The two fields a CarlaSource changes; the rest of carla.WorldSettings is left as the server has it.
FIELDS = ("synchronous_mode", "fixed_delta_seconds")
MAX_ACTOR_ID = 2**32 - 1  # CARLA actor ids are uint32


def lease_folder() -> Path:
    """$NEURAL_DRIVE_CACHE/carla-settings, by default ~/.cache/neural-drive/carla-settings (the folder
    neural_render.export.cache_dir keeps its ONNX files in; read here, not imported, because
    neural_render.export loads torch and the CARLA client should not)."""
    return Path(os.environ.get("NEURAL_DRIVE_CACHE", Path.home() / ".cache" / "neural-drive")) / "carla-settings"


def settings_fields(settings: Any) -> dict[str, Any]:
    """The fields of FIELDS from a carla.WorldSettings (or anything with those attributes)."""
    delta = settings.fixed_delta_seconds
    return {"synchronous_mode": bool(settings.synchronous_mode),
            "fixed_delta_seconds": None if delta is None else float(delta)}


def describe(fields: dict[str, Any]) -> str:
    """'synchronous, fixed delta 0.05 s' or 'asynchronous, variable delta'."""
    mode = "synchronous" if fields["synchronous_mode"] else "asynchronous"
    delta = fields["fixed_delta_seconds"]
    return f"{mode}, " + ("variable delta" if delta is None else f"fixed delta {delta:g} s")


def same_settings(a: dict[str, Any], b: dict[str, Any]) -> bool:
    delta_a, delta_b = a["fixed_delta_seconds"], b["fixed_delta_seconds"]
    same_delta = (delta_a is None and delta_b is None) or (
        delta_a is not None and delta_b is not None and math.isclose(delta_a, delta_b, rel_tol=1e-6))
    return a["synchronous_mode"] == b["synchronous_mode"] and same_delta


class ServerBusy(RuntimeError):
    """A live drive on this machine holds the server."""


@dataclass
class LeftBehind:
    """The note of a drive on this machine that is no longer running."""

    path: Path
    pid: int
    started: str
    original: dict[str, Any]
    applied: dict[str, Any]
    actors: list[dict[str, Any]]  # {"id", "type_id", "role_name", "parent_id"}, in spawn order

    def who(self) -> str:
        return f"pid {self.pid}, since {self.started}"


_INSTANCES = itertools.count()  # one note per source, also for two sources in one process


class ServerLease:
    """This drive's note for one CARLA server: within ``claim()``, ``check_in`` before changing anything
    and ``take`` just before applying the settings; ``add_actors`` after each spawn, ``retire`` a dead
    drive's note once this one carries its original settings, ``release`` after the teardown restored
    them. Never raises on a file problem (only ``check_in`` raises, ServerBusy): losing the note costs
    only the crash recovery, so that is logged and the drive goes on."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, int(port)
        self.folder = lease_folder() / f"{_server_key(host)}_{self.port}"
        self.machine = socket.gethostname()
        self.path = self.folder / f"{_safe(self.machine)}_{os.getpid()}_{next(_INSTANCES)}.json"
        self._note: dict[str, Any] | None = None
        self._write_failed = False

    @contextlib.contextmanager
    def claim(self):
        """An exclusive lock on the server's folder for the stretch from check_in to take: without it
        two drives started together both found no live note."""
        with contextlib.ExitStack() as held:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                held.enter_context(exclusive_lock(self.folder / ".lock"))
            except OSError:
                pass  # unlocked: check_in and take say what is wrong with the folder
            yield

    # ------------------------------------------------------------------ reading other drives' notes
    def check_in(self) -> list[LeftBehind]:
        """The notes of dead drives on this machine, newest first. Raises ServerBusy when a live one
        holds the server; warns about notes from other machines; removes damaged notes."""
        dead: list[LeftBehind] = []
        for path in self._notes():
            note = _read(path)
            if note is None:
                continue
            machine, pid = note.get("machine"), note.get("pid")
            if machine == self.machine and pid == os.getpid():
                continue  # another source of this process (a library user's): its own teardown restores
            if machine != self.machine:
                log.warning("a note of a drive on %s (pid %s, since %s) holds the CARLA server at %s:%d: if that "
                            "drive still runs, two drives tick one world; left alone: %s", machine, pid,
                            note.get("started", "?"), self.host, self.port, path)
                continue
            if process_alive(pid, note.get("process_start")):
                raise ServerBusy(f"another drive (pid {pid}, since {note.get('started', '?')}) is driving the CARLA "
                                 f"server at {self.host}:{self.port}: two drives would both tick its world; stop "
                                 f"that one first, or drive another server (--port)")
            left = _left_behind(path, note)
            if left is not None:
                dead.append(left)
        return sorted(dead, key=lambda left: left.started, reverse=True)

    def _notes(self) -> list[Path]:
        try:
            return sorted(p for p in self.folder.glob("*.json") if p != self.path)
        except OSError as error:
            log.warning("could not read %s (%s): a drive killed earlier cannot be cleaned up", self.folder, error)
            return []

    # ------------------------------------------------------------------ this drive's note
    def take(self, original: Any, applied: Any) -> None:
        """Write the note of a drive about to apply ``applied`` over ``original`` (carla.WorldSettings)."""
        self._note = {"pid": os.getpid(), "process_start": process_start(os.getpid()), "machine": self.machine,
                      "started": time.strftime("%Y-%m-%d %H:%M:%S"), "server": f"{self.host}:{self.port}",
                      "original": settings_fields(original), "applied": settings_fields(applied), "actors": []}
        self._write()

    @property
    def written(self) -> bool:
        """Whether this drive's note is on disk (a write failed: the crash recovery is off)."""
        return self._note is not None and not self._write_failed

    def add_actors(self, *actors: Any) -> None:
        """List spawned actors (carla.Actor: id, type_id, attributes, parent) in the note."""
        if self._note is None:
            return
        self._note["actors"] += [_actor_entry(actor) for actor in actors]
        self._write()

    def retire(self, left: LeftBehind) -> None:
        """Remove a dead drive's note: this drive's own note now carries what is left to restore."""
        _remove(left.path)

    def release(self) -> None:
        """Remove this drive's note: the original settings are back on the server."""
        self._note = None
        _remove(self.path)

    def _write(self) -> None:
        """Atomically: a half-written note would be read as damaged. A failure is said once."""
        partial = self.path.with_suffix(".partial")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(self._note, indent=1) + "\n")
            os.replace(partial, self.path)
        except OSError as error:
            _remove(partial, quiet=True)
            if not self._write_failed:
                log.warning("could not write %s (%s): if this drive dies without its teardown, the server "
                            "stays %s", self.path, error, describe(self._note["applied"]))
            self._write_failed = True


# ---------------------------------------------------------------------- is it the world that drive left?
def actors_as_spawned(left: LeftBehind, found: dict[int, Any]) -> bool:
    """True when every actor the dead drive listed is there as spawned: type, role name, and each
    camera on the car it was mounted on. Ids alone are not enough: a restarted server reuses them."""
    if not left.actors:
        return False
    for entry in left.actors:
        actor = found.get(entry["id"])
        if actor is None or _actor_entry(actor) != entry:
            return False
    return True


def _actor_entry(actor: Any) -> dict[str, Any]:
    attributes = getattr(actor, "attributes", None) or {}
    parent = getattr(actor, "parent", None)
    return {"id": int(actor.id), "type_id": str(actor.type_id), "role_name": str(attributes.get("role_name", "")),
            "parent_id": int(parent.id) if parent is not None else 0}


# ---------------------------------------------------------------------- files and processes
def _read(path: Path) -> dict[str, Any] | None:
    try:
        note = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:  # its drive just removed it
        return None
    except OSError as error:
        log.warning("could not read %s (%s): ignoring it", path, error)
        return None
    except ValueError:  # not UTF-8, not JSON
        note = None
    if not isinstance(note, dict) or not isinstance(note.get("pid"), int) or not isinstance(note.get("machine"), str):
        log.warning("removed %s: damaged (not a note this version wrote)", path)
        _remove(path)
        return None
    return note


def _left_behind(path: Path, note: dict[str, Any]) -> LeftBehind | None:
    """The note as a LeftBehind, or None (removed, with a warning) when a field is not as written."""
    try:
        original, applied = _checked_fields(note["original"]), _checked_fields(note["applied"])
        actors = [_checked_actor(entry) for entry in note.get("actors", [])]
        return LeftBehind(path, int(note["pid"]), str(note.get("started", "?")), original, applied, actors)
    except (KeyError, TypeError, ValueError, IndexError):
        log.warning("removed %s: damaged (a field is not as written)", path)
        _remove(path)
        return None


def _checked_fields(fields: dict[str, Any]) -> dict[str, Any]:
    sync, delta = fields["synchronous_mode"], fields["fixed_delta_seconds"]
    if not isinstance(sync, bool):
        raise TypeError("synchronous_mode")
    if delta is not None and not (is_real(delta, finite=True) and delta > 0):
        raise ValueError("fixed_delta_seconds")
    return {"synchronous_mode": sync, "fixed_delta_seconds": None if delta is None else float(delta)}


def _checked_actor(entry: dict[str, Any]) -> dict[str, Any]:
    actor_id, parent_id = int(entry["id"]), int(entry["parent_id"])
    if not (0 < actor_id <= MAX_ACTOR_ID and 0 <= parent_id <= MAX_ACTOR_ID):
        raise ValueError("actor id")
    return {"id": actor_id, "type_id": str(entry["type_id"]), "role_name": str(entry["role_name"]),
            "parent_id": parent_id}


def _remove(path: Path, quiet: bool = False) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        if not quiet:
            log.warning("could not remove %s: %s", path, error)


def _server_key(host: str) -> str:
    """One folder per server however it is named: every loopback name and address ('localhost',
    '127.0.0.1', '::1') is 'localhost'; other names go by their first IPv4 address."""
    try:
        addresses = [info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]
    except (OSError, UnicodeError):
        return _safe(host)
    if any(_is_loopback(address) for address in addresses):
        return "localhost"
    ipv4 = [address for address in addresses if ":" not in address]
    return _safe((ipv4 or addresses or [host])[0])


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in name.lower())
