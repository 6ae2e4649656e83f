"""A CARLA 0.9.16 wire-protocol stand-in server backed by the procedural world.

It lets the real ``carla`` client library (and so our CarlaSource, the Traffic Manager, CARLA's own
example scripts) run in tests and demos without Unreal Engine. Modules, one job each:
rpc (msgpack-rpc framing), streaming (tokens, sensor stream server), protocol (wire encodings),
blueprints, actors (registry, attachment poses), weather, world (episode state and ticks),
methods (the RPC method table), server (wires them up), __main__ (the CLI).
"""

__all__ = ["StandinServer"]


def __getattr__(name: str):
    # Imported on first use: the server needs msgpack (the `carla` extra), and `python -m
    # carla_bridge.standin --help` or the protocol module must not fail for want of it.
    if name == "StandinServer":
        from carla_bridge.standin.server import StandinServer

        return StandinServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
