"""A CarlaSource's check-in with a CARLA server: take the server's lease and clean up after dead drives.

A drive killed without its teardown (SIGKILL, a crash) leaves the server in synchronous mode with its
ego and cameras in the world, and a note on disk saying so (carla_bridge.client.lease). The next drive
from this machine reads those notes under the lease's lock, destroys what the dead drives left where
the world is provably theirs, and adopts the settings from before them, so its own teardown restores
what the server had before any of them. Kept apart from carla_source.py: this runs once per drive, at
connect time, and is about other drives' leftovers rather than this drive's frames.
"""

from __future__ import annotations

import logging
from typing import Any

from carla_bridge.client import lease as server_lease
from carla_bridge.client.connect import CarlaConnectionError
from carla_bridge.client.lease import LeftBehind, ServerBusy, ServerLease

log = logging.getLogger("carla_bridge.client.takeover")


def check_in(lease: ServerLease, world: Any, client: Any, carla: Any, where: str, sync: bool,
             delta_s: float) -> tuple[Any, Any]:
    """Claim the server for this drive: ``(original, settings)``, the world settings to restore at the
    end and the ones to apply now. The note is written before anything is applied. Raises
    CarlaConnectionError when a live drive holds the server."""
    with lease.claim():  # until this drive's note is written: a drive started beside it waits
        original = world.get_settings()
        try:
            dead = lease.check_in()
        except ServerBusy as busy:
            raise CarlaConnectionError(str(busy)) from None
        adopted = take_over(world, client, carla, where, dead, original) if dead else None
        if adopted is not None:
            original.synchronous_mode = adopted["synchronous_mode"]
            original.fixed_delta_seconds = adopted["fixed_delta_seconds"]
        settings = world.get_settings()
        settings.synchronous_mode = sync
        settings.fixed_delta_seconds = delta_s
        lease.take(original, settings)  # first: a kill during apply_settings must leave the note
    for left in dead:
        lease.retire(left)  # this drive's note now carries what is left to restore
    return original, settings


def take_over(world: Any, client: Any, carla: Any, where: str, dead: list[LeftBehind],
              current: Any) -> dict[str, Any] | None:
    """Clean up after drives on this machine that died without their teardown (newest first; see
    carla_bridge.client.lease): destroy their actors where they are still as spawned, and return the
    settings to restore at the end when the world is still as the newest one left it (its actors as
    spawned; a drive killed before it spawned any leaves only its settings to go by)."""
    current_fields = server_lease.settings_fields(current)
    adopted = None
    for left in dead:
        found = find_actors(world, left)
        as_spawned = server_lease.actors_as_spawned(left, found)
        same_world = as_spawned or not left.actors
        if adopted is None and same_world and server_lease.same_settings(left.applied, current_fields):
            log.warning("the CARLA server at %s is still %s from a drive that did not end cleanly (%s): the "
                        "settings from before it (%s) will be restored when this one ends", where,
                        server_lease.describe(left.applied), left.who(), server_lease.describe(left.original))
            adopted = left.original
        if as_spawned:
            destroy_left_actors(client, carla, left)
        else:
            maybe = [f"{a.type_id} ({a.id})" for a in found.values()
                     if any(e["id"] == a.id and e["type_id"] == a.type_id for e in left.actors)]
            if maybe:
                log.warning("the world at %s changed since a drive ended without its teardown (%s): %s may be "
                            "its actors; not removed", where, left.who(), ", ".join(maybe))
    return adopted


def find_actors(world: Any, left: LeftBehind) -> dict[int, Any]:
    """The actors with the ids a dead drive's note lists that the world still has, by id."""
    if not left.actors:
        return {}
    try:
        return {actor.id: actor for actor in world.get_actors([entry["id"] for entry in left.actors])}
    except RuntimeError as error:
        log.warning("could not look up the actors of a drive that ended without its teardown: %s", error)
        return {}


def destroy_left_actors(client: Any, carla: Any, left: LeftBehind) -> None:
    """Cameras first, then the car they are mounted on. As a batch of commands: ``actor.destroy()``
    asks this client's view of the world first, and a client that joined a frozen world may hold
    a stale one ("attempting to destroy an actor that is already dead") and send nothing."""
    entries = list(reversed(left.actors))
    try:
        responses = client.apply_batch_sync([carla.command.DestroyActor(entry["id"]) for entry in entries], False)
    except RuntimeError as error:
        log.warning("could not destroy what a drive that ended without its teardown left: %s", error)
        return
    gone = []
    for entry, response in zip(entries, responses):
        if response.error:
            log.warning("could not destroy %s (%d): %s", entry["type_id"], entry["id"], response.error)
        else:
            gone.append(f"{entry['type_id']} ({entry['id']})")
    if gone:
        log.warning("destroyed what that drive left in the world: %s", ", ".join(reversed(gone)))
