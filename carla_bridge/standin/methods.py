"""The RPC method table: one handler per CARLA RPC the stand-in serves.

Every call arrives as ``(method, [metadata, *args])`` (CARLA prefixes rpc::Metadata: ``[False]`` for a
call the client waits on, ``[True]`` for fire-and-forget). Handlers return CARLA Response values
(protocol.ok / ok_void / error). An unknown method is logged at ERROR level with its arguments, the
first time it is called, and answered with an error Response: the client raises RuntimeError naming
it, instead of hanging (or, in a Traffic Manager thread, aborting without a word, which is why the log
line must be loud). Names and arguments are logged shortened (logtext.shorten).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from carla_bridge.procedural.opendrive import town_to_opendrive
from carla_bridge.standin import protocol
from carla_bridge.standin.actors import SPECTATOR_ID, ActorRecord, blueprint_library, vehicle_extent
from carla_bridge.standin.logtext import shorten
from carla_bridge.standin.protocol import control_from_rpc, ok, ok_void, transform_from_rpc, transform_to_rpc
from carla_bridge.standin.unknown import UnknownCalls
from carla_bridge.standin.world import EPISODE_STREAM, SpawnError, StandinWorld

log = logging.getLogger("carla_bridge.standin.methods")

CARLA_VERSION = "0.9.16"
# rpc::Command variant indices (LibCarla/source/carla/rpc/Command.h) the stand-in executes.
COMMAND_SPAWN, COMMAND_DESTROY, COMMAND_VEHICLE_CONTROL = 0, 1, 2
# Calls that only change looks or physics details the procedural world does not model: accepted.
ACCEPTED_NO_OP = (
    "set_actor_simulate_physics", "set_actor_enable_gravity", "set_vehicle_light_state",
    "update_lights_state", "freeze_traffic_light", "draw_debug_shape", "enable_actor_constant_velocity",
    "disable_actor_constant_velocity", "set_actor_target_velocity", "set_actor_target_angular_velocity",
    "enable_sensor_for_ros", "disable_sensor_for_ros", "stop_sensor", "send", "set_pedestrians_cross_factor",
    "reset_all_traffic_lights",  # the procedural town has no traffic-light actors
)


class ActorNotFound(KeyError):
    """An RPC named an actor that does not exist (any more): CARLA answers ActorNotFound."""

    def __str__(self) -> str:
        return str(self.args[0])


def _is_metadata(value: Any) -> bool:
    """rpc::Metadata on the wire: ``[asynchronous: bool]``."""
    return isinstance(value, list) and len(value) == 1 and isinstance(value[0], bool)


class MethodTable:
    """Dispatches RPCs to ``h_<method>`` handlers bound to a StandinWorld."""

    def __init__(self, world: StandinWorld) -> None:
        self.world = world
        self.traffic_managers: dict[int, list] = {}  # TM port -> [ip, port] (rpc TM registry)
        self.unknown_calls = UnknownCalls()  # for tests and the shutdown summary

    def __call__(self, method: str, params: list) -> Any:
        handler: Callable | None = getattr(self, f"h_{method}", None)
        args = params[1:] if params and _is_metadata(params[0]) else params
        log.debug("rpc %s%s", shorten(method), shorten(args))
        if handler is None:
            if method in ACCEPTED_NO_OP:
                log.debug("accepted without effect: %s%s", method, shorten(args))
                return ok_void()
            name = self.unknown_calls.record(method, args, handlers_in=__name__)
            return protocol.error(f"CARLA stand-in: RPC '{name}' is not implemented")
        try:
            return handler(*args)
        except ActorNotFound as error:
            log.info("rpc %s%s: %s", method, shorten(args), error)
            return protocol.error(str(error))
        except Exception as error:  # answer as CARLA does (a Response error), never drop the call
            log.warning("rpc %s%s failed: %s: %s", method, shorten(args), type(error).__name__, shorten(str(error)))
            return protocol.error(f"{method}: {shorten(str(error), 200)}")

    # ------------------------------------------------------------------ episode and settings
    def h_version(self) -> list:
        return ok(CARLA_VERSION)

    def h_get_episode_info(self) -> list:
        return ok([self.world.episode_id, [self.world.streams.token(EPISODE_STREAM)]])

    def h_get_episode_settings(self) -> list:
        return ok(self.world.settings)

    def h_set_episode_settings(self, settings: list) -> list:
        return ok(self.world.apply_settings(settings))

    def h_tick_cue(self) -> list:
        return ok(self.world.tick())

    def h_get_weather_parameters(self) -> list:
        return ok(self.world.weather)

    def h_set_weather_parameters(self, parameters: list) -> list:
        self.world.set_weather(parameters)
        return ok_void()

    # ------------------------------------------------------------------ map and blueprints
    def h_get_actor_definitions(self) -> list:
        return ok([b.to_rpc() for b in blueprint_library()])

    def h_get_map_info(self) -> list:
        spawn_points = [transform_to_rpc(t) for t in self.world.world.town.spawn_points()]
        return ok([self.world.map_name, spawn_points])

    def h_get_map_data(self) -> list:
        return ok(town_to_opendrive(self.world.world.town))

    def h_get_required_files(self, folder: str = "", download: bool = True) -> list:
        return ok([])

    def h_get_navigation_mesh(self) -> list:
        return ok(b"")

    def h_query_lights_state(self, client: str = "") -> list:
        return ok([])

    def h_get_vehicle_light_states(self) -> list:
        return ok([])

    # ------------------------------------------------------------------ actors
    def _actor(self, record: ActorRecord) -> list:
        token = self.world.streams.token(record.stream_id) if record.stream_id is not None else b""
        if record.is_vehicle:
            extent = vehicle_extent(record.type_id)
            box, tags = protocol.bounding_box_to_rpc(extent, extent[2], record.actor_id), bytes([14])
        else:
            box, tags = protocol.bounding_box_to_rpc((0.0, 0.0, 0.0), 0.0, record.actor_id), b""
        return [record.actor_id, record.parent_id, record.description, box, tags, token]

    def _record(self, actor_id: int) -> ActorRecord:
        record = self.world.actors.get(int(actor_id))
        if record is None:
            raise ActorNotFound(f"actor {actor_id} not found (destroyed?)")
        return record

    def h_get_spectator(self) -> list:
        return ok(self._actor(self.world.actors.get(SPECTATOR_ID)))

    def h_spawn_actor(self, description: list, transform: list) -> list:
        return ok(self._actor(self.world.spawn(description, transform_from_rpc(transform))))

    def h_spawn_actor_with_parent(self, description: list, transform: list, parent: int, *attachment) -> list:
        return ok(self._actor(self.world.spawn(description, transform_from_rpc(transform), int(parent))))

    def h_destroy_actor(self, actor_id: int) -> list:
        if not self.world.destroy(int(actor_id)):
            raise ActorNotFound(f"destroy failed: actor {actor_id} not found")
        return ok(True)

    def h_get_actors_by_id(self, ids: list) -> list:
        records = (self.world.actors.get(int(i)) for i in ids)
        return ok([self._actor(r) for r in records if r is not None])

    def h_get_actor_bounding_box(self, actor_id: int) -> list:
        """CarlaServer.cpp answers a default (all-zero) BoundingBox for an actor that is gone, never an
        error: libcarla's Traffic Manager thread asks for just-destroyed cars and aborts on an error."""
        record = self.world.actors.get(int(actor_id))
        if record is None:
            return ok(protocol.bounding_box_to_rpc((0.0, 0.0, 0.0), 0.0, 0))
        return ok(self._actor(record)[3])

    def h_get_actor_component_world_transform(self, actor_id: int, name: str) -> list:
        return ok(transform_to_rpc(self.world.world_pose(self._record(actor_id))))

    def h_get_sensor_token(self, stream_id: int) -> list:
        """The token of a stream (the client re-resolves the stream id of each token it holds)."""
        self.world.streams.expect(int(stream_id))
        return ok([self.world.streams.token(int(stream_id))])

    def h_is_sensor_enabled_for_ros(self, sensor_id: int) -> list:
        return ok(False)

    def h_apply_control_to_vehicle(self, actor_id: int, control: list) -> list:
        self.world.apply_control(int(actor_id), control_from_rpc(control))
        return ok_void()

    def h_set_actor_autopilot(self, actor_id: int, enabled: bool) -> list:
        self.world.set_autopilot(int(actor_id), bool(enabled))
        return ok_void()

    def h_set_actor_transform(self, actor_id: int, transform: list) -> list:
        self.world.set_transform(int(actor_id), transform_from_rpc(transform))
        return ok_void()

    def h_set_actor_location(self, actor_id: int, location: list) -> list:
        pose = self.world.world_pose(self._record(actor_id))
        x, y, z = location
        self.world.set_transform(int(actor_id), transform_from_rpc([[x, y, z], [pose.pitch, pose.yaw, pose.roll]]))
        return ok_void()

    def h_apply_batch(self, commands: list, do_tick: bool = False) -> list:
        """Run rpc::Commands in order; answers a bare list of CommandResponse (Response<ActorId>)."""
        responses = [self._command(c) for c in commands]
        if do_tick:
            self.world.tick()
        return responses

    def _command(self, command: list) -> list:
        # rpc::Command is MSGPACK_DEFINE_ARRAY(command) around a boost::variant [index, fields].
        kind, fields = command[0] if len(command) == 1 else command
        try:
            if kind == COMMAND_VEHICLE_CONTROL:
                actor_id, control = fields
                self.world.apply_control(int(actor_id), control_from_rpc(control))
                return ok(int(actor_id))
            if kind == COMMAND_DESTROY:
                actor_id = int(fields[0])
                return ok(actor_id) if self.world.destroy(actor_id) else protocol.error(f"actor {actor_id} not found")
            if kind == COMMAND_SPAWN:
                description, transform, parent = fields[0], fields[1], fields[2]
                parent_id = int(parent[1]) if parent and parent[0] else 0
                return ok(self.world.spawn(description, transform_from_rpc(transform), parent_id).actor_id)
        except (KeyError, ValueError, SpawnError) as error:
            return protocol.error(str(error))
        log.error("UNKNOWN batch command %r (variant %r): answered with an error", fields, kind)
        return protocol.error(f"CARLA stand-in: batch command variant {kind} is not implemented")

    # ------------------------------------------------------------------ traffic manager registry
    # CarlaServer.cpp's registry: a plain map, port -> host. It never checks that a TM still runs: one
    # whose process died stays listed until a client destroys it, and a second add for a port is refused.
    def h_is_traffic_manager_running(self, port: int) -> list:
        return ok(int(port) in self.traffic_managers)

    def h_get_traffic_manager_running(self, port: int) -> list:
        return ok(self.traffic_managers.get(int(port), ["", 0]))

    def h_add_traffic_manager_running(self, info: list) -> list:
        host, port = info
        if int(port) in self.traffic_managers:
            log.info("traffic manager at %s:%s not registered: port %s is taken by %s:%s", host, port, port,
                     *self.traffic_managers[int(port)])
            return ok(False)
        self.traffic_managers[int(port)] = [host, int(port)]
        log.info("traffic manager registered at %s:%s", host, port)
        return ok(True)

    def h_destroy_traffic_manager(self, port: int) -> list:
        return ok(self.traffic_managers.pop(int(port), None) is not None)
