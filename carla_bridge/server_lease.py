"""A note on disk of what a CarlaSource changed on a server (the world settings, the actors it
spawned), so a session that dies without its teardown (SIGKILL, a segfault in libcarla, a power cut)
does not leave the server frozen for good, with its car and cameras still in the world.

CARLA keeps a synchronous world waiting for ``world.tick()`` from a client. When the client that
switched synchronous mode on dies without switching it off, the world stops; the next client (ours
or manual_control.py) reads that frozen state as "the original settings" and restores it on exit, so
the server stays stuck until someone restarts it or fixes the settings by hand. The dead client's
cameras go on rendering every tick for no one, and its car stays parked on the road.

So before a source changes the settings it writes the settings it found, and the ones it applies, to
``<cache>/carla-settings/<host>_<port>.json``, and adds the ids of the actors it spawns; it removes
the file once its teardown has put the found settings back. The next source at that address that
finds such a file, from a process that is no longer running, and a world still in exactly the applied
state, takes the file's settings as the original ones (restored when it ends) and destroys the listed
actors that are still there, saying so in one line each. A file whose world no longer matches (the
server was restarted, or another client changed the settings since) is stale and is removed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("carla_bridge.server_lease")

# The two fields a CarlaSource changes; the rest of carla.WorldSettings is left as the server has it.
FIELDS = ("synchronous_mode", "fixed_delta_seconds")


def lease_folder() -> Path:
    """$NEURAL_DRIVE_CACHE/carla-settings, by default ~/.cache/neural-drive/carla-settings (the folder
    neural_render.export keeps its ONNX files in; carla_bridge does not import neural_render)."""
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


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    delta_a, delta_b = a["fixed_delta_seconds"], b["fixed_delta_seconds"]
    same_delta = (delta_a is None and delta_b is None) or (
        delta_a is not None and delta_b is not None and math.isclose(delta_a, delta_b, rel_tol=1e-6))
    return a["synchronous_mode"] == b["synchronous_mode"] and same_delta


def _address(host: str) -> str:
    """The host's first IP address, or the name itself when it does not resolve."""
    try:
        return str(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0])
    except (OSError, UnicodeError, IndexError):
        return host


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


@dataclass
class LeftBehind:
    """What a dead session left on the server: the settings it found there, and its actors."""

    original: dict[str, Any]
    actors: list[tuple[int, str]]  # (actor id, type_id), in spawn order: the ego first


class ServerLease:
    """The lease of one CARLA address: ``adopt`` before changing settings, ``take`` just before applying
    them, ``add_actors`` after each spawn, ``release`` after the teardown restored them. Never raises on
    a file problem: losing the note costs only the crash recovery, so that is logged, and the drive
    goes on."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, int(port)
        # One note per server however it is named: "localhost" and "127.0.0.1" are the same CARLA.
        address = _address(host)
        safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in address.lower())
        self.path = lease_folder() / f"{safe}_{self.port}.json"
        self._note: dict[str, Any] | None = None
        self._write_failed = False

    def adopt(self, current: Any) -> LeftBehind | None:
        """What a dead session left, when it left the world as it is now: its original settings are
        to be restored at the end instead of ``current``. None when there is no such session (then
        ``current`` is the original). A stale or unreadable file is removed."""
        note = self._read()
        if note is None:
            return None
        try:
            pid, original, applied = int(note["pid"]), note["original"], note["applied"]
            original = {name: original[name] for name in FIELDS}
            applied = {name: applied[name] for name in FIELDS}
            actors = [(int(actor_id), str(type_id)) for actor_id, type_id in note.get("actors", [])]
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring %s: not a settings note this version wrote", self.path)
            self._remove()
            return None
        here = note.get("machine") == socket.gethostname()
        if here and pid != os.getpid() and _process_alive(pid):
            log.warning("another session (pid %d, since %s) is driving the CARLA server at %s:%d; two "
                        "clients in synchronous mode tick the same world", pid, note.get("started", "?"),
                        self.host, self.port)
            return None
        if not _same(applied, settings_fields(current)):
            self._remove()  # the server restarted, or a client changed the settings since
            return None
        log.warning("the CARLA server at %s:%d is still %s from a session that did not end cleanly (pid %d, "
                    "since %s): the settings from before it (%s) will be restored when this one ends",
                    self.host, self.port, describe(applied), pid, note.get("started", "?"), describe(original))
        return LeftBehind(original, actors)

    def take(self, original: Any, applied: Any) -> None:
        """Write the note of a session about to apply ``applied`` over ``original``."""
        self._note = {"pid": os.getpid(), "machine": socket.gethostname(),
                      "started": time.strftime("%Y-%m-%d %H:%M:%S"), "server": f"{self.host}:{self.port}",
                      "original": settings_fields(original), "applied": settings_fields(applied), "actors": []}
        self._write()

    def add_actors(self, *actors: Any) -> None:
        """List spawned actors (anything with ``id`` and ``type_id``) in the note taken before."""
        if self._note is None:
            return
        self._note["actors"] += [[int(actor.id), str(actor.type_id)] for actor in actors]
        self._write()

    def _write(self) -> None:
        """Atomically: a half-written note would be read as damaged. A failure is said once."""
        note = self._note
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(f".{os.getpid()}.partial")
            partial.write_text(json.dumps(note, indent=1) + "\n")
            os.replace(partial, self.path)
        except OSError as error:
            if not self._write_failed:
                log.warning("could not write %s (%s): if this session dies without its teardown, the server "
                            "stays %s", self.path, error, describe(note["applied"]))
            self._write_failed = True

    def release(self) -> None:
        """Remove the note: the original settings are back on the server."""
        self._note = None
        self._remove()

    def _read(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as error:
            log.warning("could not read %s (%s): ignoring it", self.path, error)
            return None
        try:
            note = json.loads(text)
        except json.JSONDecodeError:
            note = None
        if not isinstance(note, dict):
            log.warning("ignoring %s: damaged (not a JSON object)", self.path)
            self._remove()
            return None
        return note

    def _remove(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as error:
            log.warning("could not remove %s: %s", self.path, error)
