"""The end of a CarlaSource's drive: put the CARLA server back as the drive found it.

Called once by CarlaSource.close (also after errors and from signal handlers). The order matters and
each step is taken on its own (``quietly``): one that fails must not skip the others, because a server
left in synchronous mode is frozen for every other client. The functions work on the source's own
state (its ego, cameras, Traffic Manager, settings to restore and lease), which they also clear.
Kept apart from carla_source.py: it is the part that has to cope with a server that is gone or hung,
where one careless RPC waits out a time-out or aborts the whole process inside libcarla.
"""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING, Any

from carla_bridge.client.probe import carla_server_answers

if TYPE_CHECKING:
    from carla_bridge.client.source import CarlaSource

log = logging.getLogger("carla_bridge.client.teardown")

PROBE_TIMEOUT_S = 0.5  # RPC timeout while tearing down when the server is already gone
TEARDOWN_TIMEOUT_S = 2.0  # per RPC while tearing down: a dead server must not hold the exit for long


def teardown(source: CarlaSource) -> None:
    """Stop and destroy the cameras, destroy the ego, switch the TM's sync off and restore the
    world's original settings, as far as the server still answers."""
    if source._server_hung:
        abandon(source)
        return
    reachable = not source._server_lost and carla_server_answers(source.host, source.port,
                                                                 timeout_s=source._patience())
    client = getattr(source, "client", None)
    if client is not None:
        client.set_timeout(TEARDOWN_TIMEOUT_S if reachable else PROBE_TIMEOUT_S)
    # Keyed on the TM, not on source._autopilot: a Ctrl+C between set_autopilot() and the flag's
    # update in step() must not leave the car registered with the TM when it is destroyed below.
    if source._ego is not None and reachable and source._tm is not None:
        # Unregister from the Traffic Manager and let it see one tick while the car still exists:
        # its thread then knows the car as an ordinary actor and does not ask the server for the
        # bounding box of a destroyed one (an uncaught error there aborts the process).
        quietly("autopilot off", source._ego.set_autopilot, False, source.tm_port)
        source._autopilot = False
        if source.sync:
            quietly("autopilot-off tick", source.world.tick, TEARDOWN_TIMEOUT_S)
    actors = [*source._sensors.values(), *([source._ego] if source._ego is not None else [])]  # cameras first
    for name, sensor in list(source._sensors.items()):
        quietly(f"stop {name} camera", sensor.stop)
    if actors and reachable:
        quietly("destroy the cameras and the ego", destroy_actors, client, source._carla, actors)
    source._sensors.clear()
    source._ego = None
    if source.sync and reachable and source._original_settings is not None:
        # One more tick so the episode state (which the Traffic Manager's thread reads once it is
        # asynchronous again) no longer lists the destroyed actors.
        quietly("final tick", source.world.tick, TEARDOWN_TIMEOUT_S)
    if source._tm is not None and reachable:
        quietly("traffic manager sync off", source._tm.set_synchronous_mode, False)
        # This source owns the TM on tm_port: shut it down, or its thread keeps polling the server
        # (and a later source in this process, maybe for another server, would get it back).
        # Not when the server is gone: its RPC would time out inside libcarla and abort.
        quietly("traffic manager shut down", source._tm.shut_down)
    if source._original_settings is not None and reachable:
        if quietly("restore world settings", source.world.apply_settings, source._original_settings):
            source._lease.release()  # set whenever _original_settings is
    if not reachable and client is not None:
        log.warning("CARLA server at %s is gone: nothing to clean up there", source._where())
    drop_client(source)


def destroy_actors(client: Any, carla: Any, actors: list) -> None:
    """Destroy ``actors``, in order, by one batch of commands. Not ``actor.destroy()``: it asks this
    client's copy of the world first, which lags the server until a tick's snapshot reaches it, and
    for an actor the copy does not list yet it sends nothing ("attempting to destroy an actor that is
    already dead"). A source closed right after it spawned its ego left the car in the world that way
    (seen in a test run), as did a client that joined a frozen world (carla_takeover)."""
    responses = client.apply_batch_sync([carla.command.DestroyActor(actor.id) for actor in actors], False)
    failed = [f"{actor.type_id} ({actor.id}): {response.error}"
              for actor, response in zip(actors, responses) if response.error]
    if failed:
        raise RuntimeError("could not destroy " + "; ".join(failed))


def abandon(source: CarlaSource) -> None:
    """Teardown for a hung server: every RPC would wait out its time-out in turn, and one that times
    out inside libcarla's Traffic Manager aborts the process. Nothing can be restored there anyway."""
    left = [f"the ego ({source._ego.type_id})" if source._ego is not None else "",
            f"its {len(source._sensors)} cameras" if source._sensors else "",
            "synchronous mode on" if source.sync and source._original_settings is not None else ""]
    note = (f" (the next drive from this machine at this server can restore the settings from before "
            f"this one and remove its actors, from the note {source._lease.path})"
            if source._lease is not None and source._lease.written else "")
    log.warning("CARLA server at %s stopped answering: left on it %s; restart it, or clean up with a "
                "client once it answers%s", source._where(), ", ".join(item for item in left if item) or "nothing",
                note)
    for name, sensor in list(source._sensors.items()):
        quietly(f"stop {name} camera", sensor.stop)  # client side only: closes the camera stream
    source._sensors.clear()
    source._ego = None
    drop_client(source)


def drop_client(source: CarlaSource) -> None:
    # Drop the client objects now, sensors first and the client last: left to interpreter exit,
    # libcarla's destructors run in arbitrary order and abort ("terminate called without an
    # active exception") when the server died.
    source._queues.clear()
    source._tm = None
    source.world = None
    source.client = None
    gc.collect()


def quietly(what: str, fn: Any, *args: Any) -> bool:
    """Run one teardown step; False (and a warning) when it failed."""
    log.debug("CARLA teardown: %s", what)  # the last of these names the step a hung exit is stuck in
    try:
        fn(*args)
    except Exception as error:  # teardown goes on: every later step still matters
        log.warning("CARLA teardown: %s failed: %s", what, error)
        return False
    return True
