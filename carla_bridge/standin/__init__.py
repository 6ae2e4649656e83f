"""A CARLA 0.9.16 wire-protocol stand-in server backed by the procedural world.

It lets the real ``carla`` client library (and so our CarlaSource, the Traffic Manager, CARLA's own
example scripts) run in tests and demos without Unreal Engine. Modules, one job each:
rpc (msgpack-rpc framing), streaming (tokens, sensor stream server), protocol (wire encodings),
actors (blueprint library, registry, attachment poses), world (episode state, weather and ticks),
methods (the RPC method table), server (``StandinServer``: wires them up), __main__ (the CLI).
The server needs msgpack (the ``carla`` extra); this package's __init__ imports nothing, so the
protocol module and ``python -m carla_bridge.standin --help`` work without it.
"""
