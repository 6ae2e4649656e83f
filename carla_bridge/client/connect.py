"""Reaching a CARLA server: the error a CarlaSource raises when it cannot, and the checks it makes
before libcarla is given the address.

libcarla handles a bad address badly: a host name that does not resolve or a port where nothing
listens costs its whole time-out, and a peer that answers something other than CARLA's msgpack-rpc
aborts the process (see carla_bridge.client.probe). So the address is checked here first, with
messages that say what to do. Kept apart from carla_source.py so that the parts of the source
(carla_spawn, carla_takeover) can raise CarlaConnectionError without importing the source itself.
"""

from __future__ import annotations

from typing import Any

from carla_bridge.client.probe import carla_server_answers, host_problem, not_carla_reason
from carla_bridge.core.frames import SourceLost

START_HINT = ("start CARLA first (e.g. `./CarlaUE4.sh -RenderOffScreen -carla-rpc-port={port}`), "
              "or drive the built-in world with --source procedural")


class CarlaConnectionError(SourceLost):
    """No CARLA server, or the server stopped answering: the message names host:port and what to do."""


def import_carla() -> Any:
    try:
        import carla
    except ImportError as error:
        raise ImportError(
            f"the CARLA source needs the carla 0.9.16 client library ({error}); "
            "install the extra: pip install -e .[carla]"
        ) from None
    return carla


def check_address(host: str, port: int, timeout_s: float) -> None:
    """Raise CarlaConnectionError unless a CARLA server answers at host:port (probes wait at most 2 s)."""
    unusable = host_problem(host)
    if unusable:
        raise CarlaConnectionError(f"{unusable}: check --host (e.g. 127.0.0.1 for a CARLA on this machine)")
    if not carla_server_answers(host, port, timeout_s=min(timeout_s, 2.0)):
        raise CarlaConnectionError(f"no CARLA server answers at {host}:{port}: " + START_HINT.format(port=port))
    not_carla = not_carla_reason(host, port, timeout_s=min(timeout_s, 2.0))
    if not_carla:  # libcarla would abort the whole process on such a peer (see carla_probe)
        raise CarlaConnectionError(f"the server at {host}:{port} is not CARLA ({not_carla}): check --host "
                                   f"and --port, or drive the built-in world with --source procedural")
