"""Which world source to drive: the source factory behind --source auto|procedural|carla|replay.

auto probes for a CARLA server at --host/--port (a TCP connect with a short timeout, no carla import)
and falls back to the built-in procedural world, saying why. The carla package is optional: CarlaSource
imports it when it connects, and says how to install it when it is missing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from carla_bridge.client.source import CarlaConnectionError, CarlaSource
from carla_bridge.core.frames import Source
from carla_bridge.core.net import carla_server_answers, host_problem
from carla_bridge.procedural import ProceduralWorld, WorldConfig
from carla_bridge.session import ReplaySource, SessionFormatError
from game.startup.cli import GameConfig, LaunchError

PROBE_TIMEOUT_S = 0.5


@dataclass
class SourceChoice:
    source: Source
    name: str  # "procedural", "carla" or "replay"
    reason: str  # one line for the console and the HUD


def make_source(config: GameConfig, size: tuple[int, int]) -> SourceChoice:
    """Open the source asked for; LaunchError with what to do when it cannot be opened."""
    if config.source == "replay":
        return _replay(config)
    if config.source == "procedural":
        return SourceChoice(_procedural(config, size), "procedural", "procedural world (--source procedural)")
    if config.source == "carla":
        source = _carla(config, size)
        return SourceChoice(source, "carla", _took(source))
    return _auto(config, size)


def _auto(config: GameConfig, size: tuple[int, int]) -> SourceChoice:
    where = f"{config.host}:{config.port}"
    unusable = host_problem(config.host)
    if unusable:
        return SourceChoice(_procedural(config, size), "procedural", f"procedural world ({unusable})")
    if not carla_server_answers(config.host, config.port, timeout_s=PROBE_TIMEOUT_S):
        reason = f"procedural world (no CARLA server answered at {where})"
        return SourceChoice(_procedural(config, size), "procedural", reason)
    try:
        source = _carla(config, size)
    except LaunchError as error:
        reason = f"procedural world (CARLA at {where} answered but failed: {error})"
        return SourceChoice(_procedural(config, size), "procedural", reason)
    # On a shared host the server that answered may be someone else's: name it, and how not to take it.
    return SourceChoice(source, "carla", f"{_took(source)}, taken by --source auto as the first server to answer "
                                         f"(--source procedural drives the built-in world instead)")


def _took(source: CarlaSource) -> str:
    """Which server the drive took: address, version and map."""
    return f"CARLA {source.server_version} at {source.where}, map {source.map_name}"


def _procedural(config: GameConfig, size: tuple[int, int]) -> Source:
    width, height = size
    # One numba thread: the renderer's inference shares this process, and numba's spinning thread
    # pool starves torch's on a 2-core CPU (neural_render/evaluate.py measured 28x); one thread still
    # renders 256x128 in a few milliseconds.
    options = {"width": width, "height": height, "threads": 1}
    if config.seed is not None:
        options["seed"] = config.seed
    try:
        return ProceduralWorld(WorldConfig(**options))
    except ValueError as error:
        raise LaunchError(f"procedural world: {error}") from None


def _carla(config: GameConfig, size: tuple[int, int]) -> Source:
    options = {"tm_port": config.tm_port} if config.tm_port != 8000 else {}  # 8000: CarlaSource's default
    try:
        return CarlaSource(
            host=config.host, port=config.port, size=size, sync=config.sync, vehicle_filter=config.filter,
            seed=config.seed, timeout_s=config.timeout, rolename=config.rolename, generation=config.generation,
            gamma=config.gamma, **options,
        )
    except (CarlaConnectionError, ImportError, ValueError) as error:  # ValueError: --filter matched no car
        raise LaunchError(str(error)) from None


def _replay(config: GameConfig) -> SourceChoice:
    try:
        # --res resamples the session (nearest labels, scaled flow), e.g. for a model of another size.
        source = ReplaySource(config.replay, size=config.res)
    except (SessionFormatError, FileNotFoundError, OSError) as error:
        text = str(error)  # most of these start with the folder already: say it once
        raise LaunchError(f"--replay {text}" if text.startswith(str(config.replay))
                          else f"--replay {config.replay}: {text}") from None
    for note in source.notes:  # e.g. a cut-short frames.jsonl: the replay ends early
        print(f"warning: --replay {config.replay}: {note}", file=sys.stderr)
    recorded = tuple(source.session.size)
    resized = config.res is not None and tuple(config.res) != recorded
    resampled = f", resampled to {config.res[0]}x{config.res[1]}" if resized else ""
    return SourceChoice(source, "replay", f"replay of {config.replay} ({len(source)} frames{resampled})")
