"""Which world source to drive: the source factory behind --source auto|procedural|carla|replay.

auto probes for a CARLA server at --host/--port (a TCP connect with a short timeout, no carla import)
and falls back to the built-in procedural world, saying why. The CARLA and replay sources are imported
only when chosen, so the game runs while those optional parts (or the carla package) are missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from carla_bridge.frames import Source
from game.cli import GameConfig, LaunchError

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
        return SourceChoice(_carla(config, size), "carla", f"CARLA at {config.host}:{config.port}")
    return _auto(config, size)


def _auto(config: GameConfig, size: tuple[int, int]) -> SourceChoice:
    where = f"{config.host}:{config.port}"
    try:
        from carla_bridge.carla_source import carla_server_answers
    except ImportError as error:
        reason = f"procedural world (CARLA source unavailable: {error})"
        return SourceChoice(_procedural(config, size), "procedural", reason)
    if not carla_server_answers(config.host, config.port, timeout_s=PROBE_TIMEOUT_S):
        reason = f"procedural world (no CARLA server answered at {where})"
        return SourceChoice(_procedural(config, size), "procedural", reason)
    try:
        return SourceChoice(_carla(config, size), "carla", f"CARLA at {where} (auto)")
    except LaunchError as error:
        reason = f"procedural world (CARLA at {where} answered but failed: {error})"
        return SourceChoice(_procedural(config, size), "procedural", reason)


def _procedural(config: GameConfig, size: tuple[int, int]) -> Source:
    from carla_bridge.procedural import ProceduralWorld, WorldConfig

    width, height = size
    # One numba thread: the renderer's inference shares this process, and numba's spinning thread
    # pool starved torch's on a 2-core CPU (neural_render/evaluate.py measured 28x); one thread still
    # renders 256x128 in a few milliseconds.
    options = {"width": width, "height": height, "threads": 1}
    if config.seed is not None:
        options["seed"] = config.seed
    try:
        return ProceduralWorld(WorldConfig(**options))
    except ValueError as error:
        raise LaunchError(f"procedural world: {error}") from None


def _carla(config: GameConfig, size: tuple[int, int]) -> Source:
    check_speaks_carla_rpc(config.host, config.port)
    try:
        from carla_bridge.carla_source import CarlaConnectionError, CarlaSource
    except ImportError as error:
        raise LaunchError(
            f"the CARLA source cannot be imported ({error}); install the extra: pip install -e .[carla]"
        ) from None
    options = {"tm_port": config.tm_port} if config.tm_port != 8000 else {}  # 8000: CarlaSource's default
    try:
        return CarlaSource(
            host=config.host, port=config.port, size=size, sync=config.sync,
            vehicle_filter=config.filter, seed=config.seed, **options,
        )
    except (CarlaConnectionError, ImportError, ValueError) as error:  # ValueError: --filter matched no car
        raise LaunchError(str(error)) from None


def _replay(config: GameConfig) -> SourceChoice:
    try:
        from carla_bridge.session import ReplaySource, SessionFormatError
    except ImportError as error:
        raise LaunchError(f"replay is not available in this checkout ({error})") from None
    try:
        # --res resamples the session (nearest labels, scaled flow), e.g. for a model of another size.
        source = ReplaySource(config.replay, size=config.res)
    except (SessionFormatError, FileNotFoundError, OSError) as error:
        text = str(error)  # most of these start with the folder already: say it once
        raise LaunchError(f"--replay {text}" if text.startswith(str(config.replay))
                          else f"--replay {config.replay}: {text}") from None
    recorded = tuple(getattr(getattr(source, "session", None), "size", source.size))
    resized = config.res is not None and tuple(config.res) != recorded
    resampled = f", resampled to {config.res[0]}x{config.res[1]}" if resized else ""
    return SourceChoice(source, "replay", f"replay of {config.replay} ({len(source)} frames{resampled})")


# msgpack of the rpc request [0, 0, "version", []]: type request, msgid 0, CARLA's "version" method.
_VERSION_REQUEST = b"\x94\x00\x00\xa7version\x90"
_RPC_RESPONSE = 0x94  # a response is the 4-array [1, msgid, error, result]
RPC_PROBE_TIMEOUT_S = 2.0


def check_speaks_carla_rpc(host: str, port: int, timeout_s: float = RPC_PROBE_TIMEOUT_S) -> None:
    """LaunchError when something at host:port answers a msgpack-rpc call with bytes that are not a
    msgpack-rpc response. The carla client library cannot survive that: an HTTP server's
    "400 Bad Request" made libcarla throw std::bad_cast from its I/O thread, and the whole process
    aborted (exit 134, no Python error) -- seen in QA with --host of a web proxy. No reply in time,
    or no connection, is left to CarlaSource, which has its own time-out and message."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout_s) as connection:
            connection.settimeout(timeout_s)
            connection.sendall(_VERSION_REQUEST)
            reply = connection.recv(64)
    except OSError:
        return
    if reply and reply[0] != _RPC_RESPONSE:
        preview = reply.split(b"\r\n")[0][:40].decode("ascii", "replace")
        raise LaunchError(f"the server at {host}:{port} is not CARLA (it answered {preview!r}); check --host "
                          f"and --port, or drive the built-in world with --source procedural")
