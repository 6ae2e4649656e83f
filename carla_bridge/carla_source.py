"""CarlaSource: SceneFrames from a CARLA 0.9.16 server through the real ``carla`` client library.

The pattern of CARLA's PythonAPI/examples/synchronous_mode.py and manual_control.py: synchronous mode
with a fixed delta, an ego car (role_name ``hero``) at a spawn point picked by the seed, cameras at
one hood transform (x=1.6, z=1.7) whose frames are paired by frame id (one queue per sensor, drained
after each ``world.tick()`` until ``image.frame == tick``), the Traffic Manager for autopilot, and a
teardown that always runs, also after errors and from signal handlers (:meth:`close`). Where no
teardown can run (SIGKILL, a crash), a note on disk lets the next session restore the settings from
before this one (carla_bridge.server_lease).
Byte formats are decoded by carla_bridge.carla_codec. ``carla`` is imported only when a source is made.
"""

from __future__ import annotations

import gc
import logging
import math
import queue
import random
import threading
import time
from typing import Any

from carla_bridge import carla_codec
from carla_bridge.carla_probe import carla_server_answers, host_problem, not_carla_reason
from carla_bridge.frames import Control, EgoState, SceneFrame, SourceBase, SourceLost, Transform
from carla_bridge import server_lease
from carla_bridge.server_lease import LeftBehind, ServerBusy, ServerLease

log = logging.getLogger("carla_bridge.carla_source")

CAMERA_BLUEPRINTS = {
    "semantic": "sensor.camera.semantic_segmentation",
    "flow": "sensor.camera.optical_flow",
    "depth": "sensor.camera.depth",
    "rgb": "sensor.camera.rgb",
}
CAMERA_MOUNT = Transform(x=1.6, z=1.7)  # manual_control.py's hood camera
WEATHER_PRESETS = (
    "ClearNoon", "CloudyNoon", "WetNoon", "WetCloudyNoon", "SoftRainNoon", "MidRainyNoon", "HardRainNoon",
    "ClearSunset", "CloudySunset", "WetSunset", "WetCloudySunset", "SoftRainSunset", "MidRainSunset",
    "HardRainSunset", "ClearNight", "CloudyNight", "WetNight", "SoftRainNight",
)
PROBE_TIMEOUT_S = 0.5  # RPC timeout while tearing down when the server is already gone
# TCP probes (before each autopilot tick, after an error, before teardown) wait this long at most: a
# server that is gone refuses at once, but a loaded one can leave its accept backlog full, the SYN is
# dropped and the kernel resends it only after 1 s. With 0.5 s such a live server was taken for dead
# (a drive ended with "stopped answering", a teardown skipped restoring the settings).
PROBE_PATIENCE_S = 2.0
GENERATIONS = ("1", "2", "3", "all")  # manual_control.py's --generation values (case-insensitive All)
TEARDOWN_TIMEOUT_S = 2.0  # per RPC while tearing down: a dead server must not hold the exit for long
START_HINT = ("start CARLA first (e.g. `./CarlaUE4.sh -RenderOffScreen -carla-rpc-port={port}`), "
              "or drive the built-in world with --source procedural")


class CarlaConnectionError(SourceLost):
    """No CARLA server, or the server stopped answering: the message names host:port and what to do."""


def make_camera_queue() -> queue.SimpleQueue:
    """The queue a camera's ``listen`` callback fills (libcarla's streaming thread) and ``step`` drains.

    It must be ``queue.SimpleQueue`` (C, lock-free put), never ``queue.Queue``: a Ctrl+C that lands
    while the main thread waits for ``Queue``'s mutex (contended with a camera callback, likely on a
    loaded CPU) raises KeyboardInterrupt inside ``Condition.__enter__`` after the mutex is taken and
    before the ``with`` block owns it (CPython bpo-29988), so the mutex stays locked for ever. The
    next camera frame's ``put`` then blocks libcarla's streaming thread, and destroying the client
    (teardown, or interpreter exit) joins that thread: the program hangs after Ctrl+C. Seen as gdb
    stacks of a hung client (main thread in streaming::Client::~Client -> ThreadPool::Stop -> join,
    the streaming thread in queue.put -> Condition.__enter__). The reproduction in
    tests/test_carla_failures.py (test_camera_queue_survives_ctrl_c_in_get) leaves ``Queue`` locked in
    37 to 44 of 150 tries on a loaded 2-core box, ``SimpleQueue`` in none.
    ``SimpleQueue.put`` never blocks and holds no Python-level lock (documented as reentrant)."""
    return queue.SimpleQueue()


def _import_carla() -> Any:
    try:
        import carla
    except ImportError as error:
        raise ImportError(
            f"the CARLA source needs the carla 0.9.16 client library ({error}); "
            "install the extra: pip install -e .[carla]"
        ) from None
    return carla


class CarlaSource(SourceBase):
    """A Source (frames.Source) driving an ego car in a CARLA world. Connects in the constructor."""

    name = "carla"

    def __init__(self, host: str = "127.0.0.1", port: int = 2000, size: tuple[int, int] = (512, 256),
                 fov: float = 90.0, sync: bool = True, delta_s: float = 0.05, vehicle_filter: str = "vehicle.*",
                 seed: int | None = None, timeout_s: float = 10.0,
                 cameras: tuple[str, ...] = ("semantic", "flow", "depth", "rgb"), tm_port: int = 8000,
                 rolename: str = "hero", generation: str = "All", gamma: float = 2.2) -> None:
        self.host, self.port = host, int(port)
        self.size, self.fov = _check_size(size), float(fov)
        if not 1.0 <= self.fov <= 170.0:
            raise ValueError(f"fov must lie in 1..170 degrees, got {fov!r}")
        if not delta_s > 0.0:
            raise ValueError(f"delta_s must be > 0 seconds, got {delta_s!r}")
        unknown = [c for c in cameras if c not in CAMERA_BLUEPRINTS]
        if unknown or "semantic" not in cameras:
            raise ValueError(f"cameras must include 'semantic' and come from {sorted(CAMERA_BLUEPRINTS)}, "
                             f"got {tuple(cameras)!r}")
        self.sync, self.delta_s, self.timeout_s = bool(sync), float(delta_s), float(timeout_s)
        self.vehicle_filter, self.seed, self.tm_port = vehicle_filter, seed, int(tm_port)
        if str(generation).lower() not in GENERATIONS:
            raise ValueError(f"generation must be one of 1, 2, 3 or All, got {generation!r}")
        if not gamma > 0.0:
            raise ValueError(f"gamma must be > 0, got {gamma!r}")
        self.rolename, self.generation, self.gamma = str(rolename), str(generation), float(gamma)
        self.cameras = tuple(dict.fromkeys(cameras))
        self.weather_names = list(WEATHER_PRESETS)
        self._rng = random.Random(seed)
        self._close_lock = threading.Lock()
        self._closed = False
        self._server_lost = False  # the port refuses connections: the server is gone
        self._server_hung = False  # an RPC timed out while the port still accepts: the server is hung
        self._autopilot = False
        self._sensors: dict[str, Any] = {}
        self._queues: dict[str, queue.SimpleQueue] = {}
        self.client: Any = None
        self.world: Any = None
        self._ego: Any = None
        self._tm: Any = None
        self._original_settings: Any = None
        self._lease: ServerLease | None = None  # made in _connect, once the host name is known to resolve
        self._index = -1
        self._time0: float | None = None
        self._carla = _import_carla()
        try:
            self._connect()
            self._spawn()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ setup
    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    def _connect(self) -> None:
        carla = self._carla
        unusable = host_problem(self.host)
        if unusable:
            raise CarlaConnectionError(f"{unusable}: check --host (e.g. 127.0.0.1 for a CARLA on this machine)")
        if not carla_server_answers(self.host, self.port, timeout_s=min(self.timeout_s, 2.0)):
            raise CarlaConnectionError(f"no CARLA server answers at {self._where()}: "
                                       + START_HINT.format(port=self.port))
        not_carla = not_carla_reason(self.host, self.port, timeout_s=min(self.timeout_s, 2.0))
        if not_carla:  # libcarla would abort the whole process on such a peer (see carla_probe)
            raise CarlaConnectionError(f"the server at {self._where()} is not CARLA ({not_carla}): check --host "
                                       f"and --port, or drive the built-in world with --source procedural")
        self.client = carla.Client(self.host, self.port)
        self.client.set_timeout(self.timeout_s)
        try:
            self.world = self.client.get_world()
            server_version = self.client.get_server_version()
        except RuntimeError as error:
            raise CarlaConnectionError(f"the server at {self._where()} does not answer as CARLA ({error}): "
                                       + START_HINT.format(port=self.port)) from None
        client_version = self.client.get_client_version()
        if server_version.split("-")[0] != client_version.split("-")[0]:
            log.warning("CARLA server %s vs client %s: versions differ", server_version, client_version)
        self._lease = ServerLease(self.host, self.port)
        with self._lease.claim():  # until this drive's note is written: a drive started beside it waits
            original = self.world.get_settings()
            try:
                dead = self._lease.check_in()
            except ServerBusy as busy:
                raise CarlaConnectionError(str(busy)) from None
            adopted = self._take_over(dead, original) if dead else None
            if adopted is not None:
                original.synchronous_mode = adopted["synchronous_mode"]
                original.fixed_delta_seconds = adopted["fixed_delta_seconds"]
            settings = self.world.get_settings()
            settings.synchronous_mode = self.sync
            settings.fixed_delta_seconds = self.delta_s
            self._lease.take(original, settings)  # first: a kill during apply_settings must leave the note
        for left in dead:
            self._lease.retire(left)  # this drive's note now carries what is left to restore
        self._original_settings = original
        self.world.apply_settings(settings)

    def _take_over(self, dead: list[LeftBehind], current: Any) -> dict[str, Any] | None:
        """Clean up after drives on this machine that died without their teardown (newest first; see
        carla_bridge.server_lease): destroy their actors where they are still as spawned, and return the
        settings to restore at the end when the world is still as the newest one left it (its actors as
        spawned; a drive killed before it spawned any leaves only its settings to go by)."""
        current_fields = server_lease.settings_fields(current)
        adopted = None
        for left in dead:
            found = self._find_actors(left)
            as_spawned = server_lease.actors_as_spawned(left, found)
            same_world = as_spawned or not left.actors
            if adopted is None and same_world and server_lease.same_settings(left.applied, current_fields):
                log.warning("the CARLA server at %s is still %s from a drive that did not end cleanly (%s): the "
                            "settings from before it (%s) will be restored when this one ends", self._where(),
                            server_lease.describe(left.applied), left.who(), server_lease.describe(left.original))
                adopted = left.original
            if as_spawned:
                self._destroy_left_actors(left)
            else:
                maybe = [f"{a.type_id} ({a.id})" for a in found.values()
                         if any(e["id"] == a.id and e["type_id"] == a.type_id for e in left.actors)]
                if maybe:
                    log.warning("the world at %s changed since a drive ended without its teardown (%s): %s may be "
                                "its actors; not removed", self._where(), left.who(), ", ".join(maybe))
        return adopted

    def _find_actors(self, left: LeftBehind) -> dict[int, Any]:
        if not left.actors:
            return {}
        try:
            return {actor.id: actor for actor in self.world.get_actors([entry["id"] for entry in left.actors])}
        except RuntimeError as error:
            log.warning("could not look up the actors of a drive that ended without its teardown: %s", error)
            return {}

    def _destroy_left_actors(self, left: LeftBehind) -> None:
        """Cameras first, then the car they are mounted on. As a batch of commands: ``actor.destroy()``
        asks this client's view of the world first, and a client that joined a frozen world may hold
        a stale one ("attempting to destroy an actor that is already dead") and send nothing."""
        entries = list(reversed(left.actors))
        try:
            responses = self.client.apply_batch_sync(
                [self._carla.command.DestroyActor(entry["id"]) for entry in entries], False)
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

    def _spawn(self) -> None:
        carla = self._carla
        library = self.world.get_blueprint_library()
        blueprint = self._rng.choice(self._ego_candidates(library))
        if blueprint.has_attribute("role_name"):
            blueprint.set_attribute("role_name", self.rolename)
        self._spawn_points = list(self.world.get_map().get_spawn_points())
        if not self._spawn_points:
            raise CarlaConnectionError(f"the map at {self._where()} has no spawn points")
        self._spawn_index = self._rng.randrange(len(self._spawn_points))
        for attempt in range(len(self._spawn_points)):
            index = (self._spawn_index + attempt) % len(self._spawn_points)
            self._ego = self.world.try_spawn_actor(blueprint, self._spawn_points[index])
            if self._ego is not None:
                self._spawn_index = index
                break
        if self._ego is None:
            raise CarlaConnectionError(f"every spawn point at {self._where()} is occupied")
        self._lease.add_actors(self._ego)
        log.info("ego %s (id %d) at spawn point %d", self._ego.type_id, self._ego.id, self._spawn_index)
        mount = carla.Transform(carla.Location(x=CAMERA_MOUNT.x, y=CAMERA_MOUNT.y, z=CAMERA_MOUNT.z))
        width, height = self.size
        for name in self.cameras:
            camera_bp = library.find(CAMERA_BLUEPRINTS[name])
            camera_bp.set_attribute("image_size_x", str(width))
            camera_bp.set_attribute("image_size_y", str(height))
            camera_bp.set_attribute("fov", f"{self.fov:g}")
            if name == "rgb" and camera_bp.has_attribute("gamma"):  # manual_control.py's --gamma
                camera_bp.set_attribute("gamma", f"{self.gamma:g}")
            sensor = self.world.spawn_actor(camera_bp, mount, attach_to=self._ego)
            self._lease.add_actors(sensor)
            self._sensors[name] = sensor
            self._queues[name] = make_camera_queue()
            sensor.listen(self._queues[name].put)

    def _ego_candidates(self, library: Any) -> list:
        """The ego's blueprints, by id: 4-wheeled vehicles matching the filter, of the generation
        (manual_control.py's rule: a filter that matches one blueprint ignores the generation). Only
        vehicle.* counts: a sensor or a walker has no controls (the drive asks for them each tick)."""
        vehicles = sorted((b for b in library.filter("vehicle.*") if b.id.startswith("vehicle.") and _four_wheels(b)),
                          key=lambda b: b.id)
        wanted = {b.id for b in library.filter(self.vehicle_filter)}
        cars = [b for b in vehicles if b.id in wanted]
        if not cars:
            examples = ", ".join(b.id for b in vehicles[:3]) or "none here"
            raise ValueError(f"--filter {self.vehicle_filter!r} matches no 4-wheeled vehicle blueprint on "
                             f"{self._where()}; try vehicle.* or one of {examples}")
        if self.generation.lower() != "all" and len(cars) > 1:
            cars = [b for b in cars if b.has_attribute("generation")
                    and b.get_attribute("generation").as_int() == int(self.generation)]
            if not cars:
                raise ValueError(f"--filter {self.vehicle_filter!r} matches no generation {self.generation} "
                                 f"vehicle on {self._where()}; pass --generation All")
        return cars

    def _traffic_manager(self) -> Any:
        """The Traffic Manager on tm_port, made on the first autopilot request (it runs threads in
        this process, so a drive without autopilot does not pay for it)."""
        if self._tm is None:
            try:
                self._tm = self.client.get_trafficmanager(self.tm_port)
            except RuntimeError as error:
                if "bind error" not in str(error):
                    raise
                # libcarla's words blame no one; not the server either (it still answers)
                raise CarlaConnectionError(self._tm_port_in_use()) from None
            self._tm.set_synchronous_mode(self.sync)
            self._tm.set_osm_mode(False)  # osm mode removes cars at dead ends; CARLA towns have some
            if self.seed is not None:
                self._tm.set_random_device_seed(self.seed)
        return self._tm

    def _tm_port_in_use(self) -> str:
        owner = " (it is the CARLA server's own port)" if self.tm_port in (self.port, self.port + 1) else ""
        return (f"the Traffic Manager cannot listen on port {self.tm_port}{owner}: the port is in use; "
                f"pass another --tm-port (default 8000)")

    # ------------------------------------------------------------------ Source protocol
    def reset(self, seed: int | None = None) -> SceneFrame:
        """Start an episode: with a seed, jump to that seed's spawn point; the frame has cut=True."""
        if seed is not None:
            self._rng.seed(seed)
            self._spawn_index = self._rng.randrange(len(self._spawn_points))
            self._teleport(self._spawn_points[self._spawn_index])
        self._index = -1
        return self._advance(cut=True)

    def step(self, control: Control) -> SceneFrame:
        self._guard()
        try:
            if control.autopilot != self._autopilot:
                if control.autopilot:
                    self._traffic_manager()
                self._ego.set_autopilot(control.autopilot, self.tm_port)
                self._autopilot = control.autopilot
            if not control.autopilot:
                self._ego.apply_control(self._carla.VehicleControl(
                    throttle=float(control.throttle), steer=float(control.steer), brake=float(control.brake),
                    hand_brake=bool(control.hand_brake), reverse=bool(control.reverse)))
        except CarlaConnectionError:  # already says what went wrong (a Traffic Manager port in use)
            raise
        except RuntimeError as error:
            raise self._lost(error) from None
        return self._advance(cut=False)

    def respawn(self) -> SceneFrame:
        """Move the ego to the next spawn point (cut=True: consumers drop their history)."""
        self._guard()
        self._spawn_index = (self._spawn_index + 1) % len(self._spawn_points)
        self._teleport(self._spawn_points[self._spawn_index])
        return self._advance(cut=True)

    def set_weather(self, index: int) -> str:
        """Apply CARLA weather preset ``index`` (cycles through weather_names); returns its name."""
        self._guard()
        name = self.weather_names[int(index) % len(self.weather_names)]
        preset = getattr(self._carla.WeatherParameters, name, None)
        if preset is None:  # older servers lack the night presets
            preset = self._carla.WeatherParameters.ClearNoon
        try:
            self.world.set_weather(preset)
            # libcarla sends set_weather_parameters without waiting for it (Client::SetWeatherParameters
            # is an AsyncCall); one call that waits, on the same connection, returns after the server
            # took it, so other clients (the tests' own, a spectator) see the new weather at once.
            self.world.get_weather()
        except RuntimeError as error:
            raise self._lost(error) from None
        return name

    # ------------------------------------------------------------------ ticks and frames
    def _teleport(self, transform: Any) -> None:
        try:
            self._ego.set_target_velocity(self._carla.Vector3D())
            self._ego.set_transform(transform)
        except RuntimeError as error:
            raise self._lost(error) from None

    def _advance(self, cut: bool) -> SceneFrame:
        self._guard()
        if self._autopilot and not carla_server_answers(self.host, self.port, timeout_s=self._patience()):
            # With the Traffic Manager on, world.tick() runs the TM's thread, and an RPC timeout in
            # that thread aborts the whole process (libcarla, not catchable here): probe first.
            raise self._lost("it no longer accepts connections")
        try:
            if self.sync:
                # Known residual (libcarla 0.9.16, not fixable here): with the TM in synchronous mode,
                # tick() ends in TrafficManager::Tick -> TrafficManagerLocal::SynchronousTick, which
                # waits without a timeout for the TM thread's cycle, and both sides notify their
                # condition variables without holding step_execution_mutex (a lost wake-up can block
                # for ever). Seen once in ~250 autopilot client runs on an overloaded 2-core box (tick
                # stuck > 30 s despite timeout_s = 3). No API call can unstick it: they all take the
                # TM map mutex that the stuck Tick holds.
                frame_id = self.world.tick(self.timeout_s)
            else:
                frame_id = self.world.wait_for_tick(self.timeout_s).frame
            data = {name: self._wait_frame(name, frame_id) for name in self.cameras}
            snapshot_time = data["semantic"].timestamp
            transform = self._ego.get_transform()
            velocity = self._ego.get_velocity()
            applied = self._ego.get_control()
        except CarlaConnectionError:  # _wait_frame's time-out: already says so, and set _server_hung
            raise
        except RuntimeError as error:
            raise self._lost(error) from None
        self._index += 1
        if self._time0 is None or cut and self._index == 0:
            self._time0 = snapshot_time
        return SceneFrame(index=self._index, time_s=float(snapshot_time - self._time0),
                          cut=cut, ego=self._ego_state(transform, velocity, applied), **self._decode(data))

    def _wait_frame(self, name: str, frame_id: int) -> Any:
        """Drain camera ``name``'s queue up to frame ``frame_id`` (async mode: the first at or after it)."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                data = self._queues[name].get(timeout=max(0.0, remaining))
            except queue.Empty:
                raise self._lost(f"no {name} camera frame {frame_id} within {self.timeout_s:g} s",
                                 timed_out=True) from None
            if data.frame == frame_id or (not self.sync and data.frame > frame_id):
                return data
            if data.frame > frame_id:
                raise CarlaConnectionError(f"{name} camera skipped frame {frame_id} (got {data.frame}) "
                                           f"from {self._where()}: is another client ticking this world?")

    def _decode(self, data: dict[str, Any]) -> dict[str, Any]:
        codec = carla_codec
        width, height = self.size
        out = {"labels": codec.decode_semantic(data["semantic"].raw_data, width, height)}
        if "flow" in data:
            out["flow"] = codec.decode_flow(data["flow"].raw_data, width, height)
        if "depth" in data:
            out["depth"] = codec.decode_depth(data["depth"].raw_data, width, height)
        if "rgb" in data:
            out["rgb"] = codec.decode_rgb(data["rgb"].raw_data, width, height)
        return out

    def _ego_state(self, t: Any, velocity: Any, c: Any) -> EgoState:
        yaw, pitch = math.radians(t.rotation.yaw), math.radians(t.rotation.pitch)
        forward = (math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch))
        speed = velocity.x * forward[0] + velocity.y * forward[1] + velocity.z * forward[2]
        control = Control(throttle=min(1.0, max(0.0, c.throttle)), steer=min(1.0, max(-1.0, c.steer)),
                          brake=min(1.0, max(0.0, c.brake)), hand_brake=bool(c.hand_brake),
                          reverse=bool(c.reverse), autopilot=self._autopilot)
        pose = Transform(t.location.x, t.location.y, t.location.z, t.rotation.pitch, t.rotation.yaw, t.rotation.roll)
        return EgoState(transform=pose, speed_mps=float(speed), control=control)

    # ------------------------------------------------------------------ errors and teardown
    def _patience(self) -> float:
        return min(self.timeout_s, PROBE_PATIENCE_S)

    def _guard(self) -> None:
        if self._closed:
            raise CarlaConnectionError(f"the CARLA source for {self._where()} is closed")

    def _lost(self, error: object, timed_out: bool = False) -> CarlaConnectionError:
        self._server_lost = not carla_server_answers(self.host, self.port, timeout_s=self._patience())
        # A hung server (SIGSTOPped, frozen) still accepts TCP connections (the kernel does), so the
        # probe cannot tell it from a live one: the time-out itself says it stopped answering.
        self._server_hung = not self._server_lost and (timed_out or _is_timeout(error))
        state = "disconnected" if self._server_lost else "stopped answering"
        return CarlaConnectionError(f"the CARLA server at {self._where()} {state}: {error}")

    def close(self) -> None:
        """Stop and destroy the cameras, destroy the ego, switch the TM's sync off and restore the
        world's original settings. Idempotent, never raises, and safe from a signal handler (a
        second call while the first runs returns at once)."""
        if not self._close_lock.acquire(blocking=False):
            return
        try:
            if self._closed:
                return
            self._closed = True
            self._teardown()
        finally:
            self._close_lock.release()

    def _teardown(self) -> None:
        if self._server_hung:
            self._abandon()
            return
        reachable = not self._server_lost and carla_server_answers(self.host, self.port, timeout_s=self._patience())
        client = getattr(self, "client", None)
        if client is not None:
            client.set_timeout(TEARDOWN_TIMEOUT_S if reachable else PROBE_TIMEOUT_S)
        # Keyed on the TM, not on self._autopilot: a Ctrl+C between set_autopilot() and the flag's
        # update in step() must not leave the car registered with the TM when it is destroyed below.
        if self._ego is not None and reachable and self._tm is not None:
            # Unregister from the Traffic Manager and let it see one tick while the car still exists:
            # its thread then knows the car as an ordinary actor and does not ask the server for the
            # bounding box of a destroyed one (an uncaught error there aborts the process).
            _quietly("autopilot off", self._ego.set_autopilot, False, self.tm_port)
            self._autopilot = False
            if self.sync:
                _quietly("autopilot-off tick", self.world.tick, TEARDOWN_TIMEOUT_S)
        for name, sensor in list(self._sensors.items()):
            _quietly(f"stop {name} camera", sensor.stop)
            if reachable:
                _quietly(f"destroy {name} camera", sensor.destroy)
        self._sensors.clear()
        if self._ego is not None and reachable:
            _quietly("destroy ego", self._ego.destroy)
        self._ego = None
        if self.sync and reachable and self._original_settings is not None:
            # One more tick so the episode state (which the Traffic Manager's thread reads once it is
            # asynchronous again) no longer lists the destroyed actors.
            _quietly("final tick", self.world.tick, TEARDOWN_TIMEOUT_S)
        if self._tm is not None and reachable:
            _quietly("traffic manager sync off", self._tm.set_synchronous_mode, False)
            # This source owns the TM on tm_port: shut it down, or its thread keeps polling the server
            # (and a later source in this process, maybe for another server, would get it back).
            # Not when the server is gone: its RPC would time out inside libcarla and abort.
            _quietly("traffic manager shut down", self._tm.shut_down)
        if self._original_settings is not None and reachable:
            if _quietly("restore world settings", self.world.apply_settings, self._original_settings):
                self._lease.release()  # set whenever _original_settings is
        if not reachable and client is not None:
            log.warning("CARLA server at %s is gone: nothing to clean up there", self._where())
        self._drop_client()

    def _abandon(self) -> None:
        """Teardown for a hung server: every RPC would wait out its time-out in turn, and one that times
        out inside libcarla's Traffic Manager aborts the process. Nothing can be restored there anyway."""
        left = [f"the ego ({self._ego.type_id})" if self._ego is not None else "",
                f"its {len(self._sensors)} cameras" if self._sensors else "",
                "synchronous mode on" if self.sync and self._original_settings is not None else ""]
        note = (f" (the next drive from this machine at this server can restore the settings from before "
                f"this one and remove its actors, from the note {self._lease.path})"
                if self._lease is not None and self._lease.written else "")
        log.warning("CARLA server at %s stopped answering: left on it %s; restart it, or clean up with a "
                    "client once it answers%s", self._where(), ", ".join(item for item in left if item) or "nothing",
                    note)
        for name, sensor in list(self._sensors.items()):
            _quietly(f"stop {name} camera", sensor.stop)  # client side only: closes the camera stream
        self._sensors.clear()
        self._ego = None
        self._drop_client()

    def _drop_client(self) -> None:
        # Drop the client objects now, sensors first and the client last: left to interpreter exit,
        # libcarla's destructors run in arbitrary order and abort ("terminate called without an
        # active exception") when the server died.
        self._queues.clear()
        self._tm = None
        self.world = None
        self.client = None
        gc.collect()


def _four_wheels(blueprint: Any) -> bool:
    return not blueprint.has_attribute("number_of_wheels") or blueprint.get_attribute("number_of_wheels").as_int() == 4


def _is_timeout(error: object) -> bool:
    """libcarla's TimeoutException reaches Python as RuntimeError("time-out of N ms while waiting for the
    simulator ..."): its text is the only mark it carries."""
    return "time-out" in str(error)


def _quietly(what: str, fn: Any, *args: Any) -> bool:
    """Run one teardown step; False (and a warning) when it failed."""
    log.debug("CARLA teardown: %s", what)  # the last of these names the step a hung exit is stuck in
    try:
        fn(*args)
    except Exception as error:  # teardown goes on: every later step still matters
        log.warning("CARLA teardown: %s failed: %s", what, error)
        return False
    return True


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height) in pixels, got {size!r}") from None
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise ValueError(f"size sides must lie in 16..8192 pixels, got {width}x{height}")
    return width, height
