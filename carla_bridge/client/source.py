"""CarlaSource: SceneFrames from a CARLA 0.9.16 server through the real ``carla`` client library.

The pattern of CARLA's PythonAPI/examples/synchronous_mode.py and manual_control.py: synchronous mode with a fixed delta,
an ego car at a spawn point picked by the seed, hood cameras whose frames are paired by frame id (one queue per sensor,
drained after each ``world.tick()``), the Traffic Manager for autopilot, and a teardown that always runs.
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

from carla_bridge.client import codec
from carla_bridge.client.blueprints import ego_blueprints
from carla_bridge.client.recovery import DriveNote, ServerBusy, destroy_actors
from carla_bridge.core.frames import Control, EgoState, SceneFrame, SourceBase, SourceLost, Transform
from carla_bridge.core.net import ConnectionWatch, carla_server_answers, host_problem, not_carla_reason
from carla_bridge.core.weather import from_weather_parameters

log = logging.getLogger("carla_bridge.client.source")

CAMERAS = {  # camera name: its blueprint, the SceneFrame field it fills, the decoder of its bytes
    "semantic": ("sensor.camera.semantic_segmentation", "labels", None),  # decoded and counted in _advance
    "flow": ("sensor.camera.optical_flow", "flow", codec.decode_flow),
    "depth": ("sensor.camera.depth", "depth", codec.decode_depth),
    "rgb": ("sensor.camera.rgb", "rgb", codec.decode_rgb),
}
GENERATIONS = ("1", "2", "3", "all")  # manual_control.py's --generation values (case-insensitive All)
WEATHER_PRESETS = tuple("""ClearNoon CloudyNoon WetNoon WetCloudyNoon SoftRainNoon MidRainyNoon HardRainNoon
    ClearSunset CloudySunset WetSunset WetCloudySunset SoftRainSunset MidRainSunset HardRainSunset ClearNight
    CloudyNight WetNight SoftRainNight""".split())  # carla.WeatherParameters' presets, in the order they cycle
PROBE_PATIENCE_S = 2.0  # per TCP probe: a loaded server's full backlog drops the SYN, resent after 1 s
TEARDOWN_TIMEOUT_S = 2.0  # per RPC while tearing down: a dead server must not hold the exit for long
GONE_TIMEOUT_S = 0.5  # per RPC while tearing down when the server is already gone
START_HINT = ("start CARLA first (e.g. `./CarlaUE4.sh -RenderOffScreen -carla-rpc-port={port}`), "
              "or drive the built-in world with --source procedural")


class CarlaConnectionError(SourceLost):
    """No CARLA server, or the server stopped answering: the message names host:port and what to do."""


def make_camera_queue() -> queue.SimpleQueue:
    """The queue a camera's ``listen`` callback fills (libcarla's streaming thread) and ``step`` drains:
    ``queue.SimpleQueue``, whose put never blocks. With ``queue.Queue``, a Ctrl+C while the main thread
    waits for its mutex can leave it locked (CPython bpo-29988); the next frame's ``put`` then blocks
    libcarla's streaming thread, which destroying the client joins: a hang after Ctrl+C (test_teardown)."""
    return queue.SimpleQueue()


class CarlaSource(SourceBase):
    """A Source driving an ego car in a CARLA world. Connects in the constructor, which checks its
    arguments: the rest of the class trusts them."""

    name = "carla"

    def __init__(self, host: str = "127.0.0.1", port: int = 2000, size: tuple[int, int] = (512, 256),
                 fov: float = 90.0, sync: bool = True, delta_s: float = 0.05, vehicle_filter: str = "vehicle.*",
                 seed: int | None = None, timeout_s: float = 10.0,
                 cameras: tuple[str, ...] = ("semantic", "flow", "depth", "rgb"), tm_port: int = 8000,
                 rolename: str = "hero", generation: str = "All", gamma: float = 2.2) -> None:
        width, height = size = (int(size[0]), int(size[1]))
        generation = str(generation)
        if not (16 <= width <= 8192 and 16 <= height <= 8192):
            raise ValueError(f"size sides must lie in 16..8192 pixels, got {width}x{height}")
        if not 1.0 <= fov <= 170.0:
            raise ValueError(f"fov must lie in 1..170 degrees, got {fov!r}")
        if not delta_s > 0.0:
            raise ValueError(f"delta_s must be > 0 seconds, got {delta_s!r}")
        if any(c not in CAMERAS for c in cameras) or "semantic" not in cameras:
            raise ValueError(f"cameras must include 'semantic' and come from {sorted(CAMERAS)}, "
                             f"got {tuple(cameras)!r}")
        if generation.lower() not in GENERATIONS:
            raise ValueError(f"generation must be one of 1, 2, 3 or All, got {generation!r}")
        if not gamma > 0.0:
            raise ValueError(f"gamma must be > 0, got {gamma!r}")
        self.host, self.port, self.size, self.fov, self.sync, self.delta_s = host, port, size, fov, sync, delta_s
        self.vehicle_filter, self.seed, self.timeout_s, self.tm_port = vehicle_filter, seed, timeout_s, tm_port
        self.rolename, self.generation, self.gamma = rolename, generation, gamma
        self.cameras, self.weather_names = tuple(dict.fromkeys(cameras)), list(WEATHER_PRESETS)
        self.where, self._patience = f"{host}:{port}", min(timeout_s, PROBE_PATIENCE_S)
        self._rng, self._close_lock = random.Random(seed), threading.Lock()
        self._closed = self._autopilot = False
        self._server_lost = False  # the port refuses connections: the server is gone
        self._server_hung = False  # an RPC timed out while the port still accepts: the server is hung
        self._sensors: dict[str, Any] = {}  # by camera name, as are their queues
        self._queues: dict[str, queue.SimpleQueue] = {}
        self.client = self.world = self._ego = self._tm = self._watch = None  # libcarla objects, the watch
        self._original_settings: Any = None  # the settings to restore, from the moment the note has them
        self._restored = False  # they are back on the server: the note can go
        self.teardown_failures: list[str] = []  # the close's steps that left the server changed
        self.server_version = self.map_name = ""  # which server this drive took, for the console
        self._note: DriveNote | None = None
        self._index, self._time0 = -1, None
        self.unknown_tag_pixels = 0  # semantic pixels whose tag CARLA's table lacks, drawn as Unlabeled
        try:
            import carla  # the optional extra: only a CARLA drive needs it
        except ImportError as error:
            raise ImportError(f"the CARLA source needs the carla 0.9.16 client library ({error}); "
                              "install the extra: pip install -e .[carla]") from None
        self._carla = carla
        try:
            self._connect()
            self._spawn()
        except BaseException:
            self.close()
            raise

    def _connect(self) -> None:
        """Check the address before libcarla gets it (a bad name or a closed port costs its whole
        time-out; a peer that is not CARLA aborts the process), connect, check in, switch settings."""
        if unusable := host_problem(self.host):
            raise CarlaConnectionError(f"{unusable}: check --host (e.g. 127.0.0.1 for a CARLA on this machine)")
        if not carla_server_answers(self.host, self.port, timeout_s=self._patience):
            raise CarlaConnectionError(f"no CARLA server answers at {self.where}: " + START_HINT.format(port=self.port))
        if not_carla := not_carla_reason(self.host, self.port, timeout_s=self._patience):
            raise CarlaConnectionError(f"the server at {self.where} is not CARLA ({not_carla}): check --host "
                                       f"and --port, or drive the built-in world with --source procedural")
        self._watch = ConnectionWatch(self.host, self.port, timeout_s=self._patience)
        self.client = self._carla.Client(self.host, self.port)
        self.client.set_timeout(self.timeout_s)
        try:
            self.world = self.client.get_world()
            self.server_version = server_version = self.client.get_server_version()
        except RuntimeError as error:
            raise CarlaConnectionError(f"the server at {self.where} does not answer as CARLA ({error}): "
                                       + START_HINT.format(port=self.port)) from None
        if server_version.split("-")[0] != (client_version := self.client.get_client_version()).split("-")[0]:
            log.warning("CARLA server %s vs client %s: versions differ", server_version, client_version)
        self._note = DriveNote(self.host, self.port)
        try:
            self._original_settings, settings = self._note.check_in(self.world, self.client, self._carla, self.sync,
                                                                    self.delta_s)
        except ServerBusy as busy:
            raise CarlaConnectionError(str(busy)) from None
        self.world.apply_settings(settings)

    def _spawn(self) -> None:
        """The ego at a free spawn point (the seed's, then the next ones) and its cameras, each listening
        into its own queue. Each actor is on the source and in the note the moment it exists."""
        library = self.world.get_blueprint_library()
        blueprint = self._rng.choice(ego_blueprints(library, self.vehicle_filter, self.generation, self.where))
        if blueprint.has_attribute("role_name"):
            blueprint.set_attribute("role_name", self.rolename)
        world_map = self.world.get_map()
        self.map_name = world_map.name.rsplit("/", 1)[-1]  # "Carla/Maps/Town10HD_Opt" -> "Town10HD_Opt"
        self._spawn_points = points = list(world_map.get_spawn_points())
        if not points:
            raise CarlaConnectionError(f"the map at {self.where} has no spawn points")
        first = self._rng.randrange(len(points))
        for self._spawn_index in [*range(first, len(points)), *range(first)]:
            self._ego = self.world.try_spawn_actor(blueprint, points[self._spawn_index])
            if self._ego is not None:
                break
        else:
            raise CarlaConnectionError(f"every spawn point at {self.where} is occupied")
        self._note.add_actor(self._ego)
        log.info("ego %s (id %d) at spawn point %d", self._ego.type_id, self._ego.id, self._spawn_index)
        mount = self._carla.Transform(self._carla.Location(x=1.6, z=1.7))  # manual_control.py's hood camera
        width, height = self.size
        for name in self.cameras:
            camera_bp = library.find(CAMERAS[name][0])
            for key, value in (("image_size_x", str(width)), ("image_size_y", str(height)), ("fov", f"{self.fov:g}")):
                camera_bp.set_attribute(key, value)
            if name == "rgb":  # manual_control.py's --gamma
                camera_bp.set_attribute("gamma", f"{self.gamma:g}")
            sensor = self.world.spawn_actor(camera_bp, mount, attach_to=self._ego)
            self._note.add_actor(sensor)
            self._sensors[name] = sensor
            self._queues[name] = make_camera_queue()
            sensor.listen(self._queues[name].put)

    def _traffic_manager(self) -> Any:
        """The Traffic Manager on tm_port, made on the first autopilot request (it runs threads here)."""
        if self._tm is None:
            try:
                self._tm = self.client.get_trafficmanager(self.tm_port)
            except RuntimeError as error:
                if "bind error" not in str(error):
                    raise
                # libcarla's words blame no one; not the server either (it still answers)
                owner = " (it is the CARLA server's own port)" if self.tm_port in (self.port, self.port + 1) else ""
                raise CarlaConnectionError(f"the Traffic Manager cannot listen on port {self.tm_port}{owner}: the "
                                           f"port is in use; pass another --tm-port (default 8000)") from None
            self._tm.set_synchronous_mode(self.sync)
            self._tm.set_osm_mode(False)  # osm mode removes cars at dead ends; CARLA towns have some
            if self.seed is not None:
                self._tm.set_random_device_seed(self.seed)
        return self._tm

    def reset(self, seed: int | None = None) -> SceneFrame:
        """Start an episode: with a seed, jump to that seed's spawn point; the frame has cut=True."""
        self._guard()
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
                    throttle=control.throttle, steer=control.steer, brake=control.brake,
                    hand_brake=control.hand_brake, reverse=control.reverse))
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
        name = self.weather_names[index % len(self.weather_names)]
        try:
            self.world.set_weather(getattr(self._carla.WeatherParameters, name))
            # set_weather is an AsyncCall in libcarla; one call that waits, on the same connection,
            # returns after the server took it, so other clients see the new weather at once.
            self.world.get_weather()
        except RuntimeError as error:
            raise self._lost(error) from None
        return name

    def _teleport(self, transform: Any) -> None:
        try:
            self._ego.set_target_velocity(self._carla.Vector3D())
            self._ego.set_transform(transform)
        except RuntimeError as error:
            raise self._lost(error) from None

    def _advance(self, cut: bool) -> SceneFrame:
        if self._autopilot and self._watch.closed():  # tick() runs the TM, which aborts on an RPC time-out
            raise self._lost("it closed its connection")
        try:
            # libcarla 0.9.16 limitation: with the TM on, a synchronous tick() waits without a time-out in
            # TrafficManagerLocal::SynchronousTick and can miss its wake-up (~1 in 250 runs on 2 loaded cores).
            frame_id = self.world.tick(self.timeout_s) if self.sync else self.world.wait_for_tick(self.timeout_s).frame
            data = {name: self._wait_frame(name, frame_id) for name in self.cameras}
            ego = self._ego_state(self._ego.get_transform(), self._ego.get_velocity(), self._ego.get_control())
            weather = from_weather_parameters(self.world.get_weather())  # each tick: another client may change it
        except RuntimeError as error:
            raise self._lost(error) from None
        self._index += 1
        if self._time0 is None or cut and self._index == 0:
            self._time0 = data["semantic"].timestamp
        arrays = {CAMERAS[name][1]: CAMERAS[name][2](image.raw_data, *self.size) for name, image in data.items()
                  if name != "semantic"}
        arrays["labels"], unknown = codec.decode_semantic(data["semantic"].raw_data, *self.size)
        if unknown and not self.unknown_tag_pixels:
            log.warning("the semantic camera at %s sends tags outside CARLA's 0..28 (a custom asset?): "
                        "drawn as Unlabeled, counted in unknown_tag_pixels", self.where)
        self.unknown_tag_pixels += unknown
        return SceneFrame(index=self._index, time_s=float(data["semantic"].timestamp - self._time0), cut=cut,
                          ego=ego, weather=weather, **arrays)

    def _wait_frame(self, name: str, frame_id: int) -> Any:
        """Drain camera ``name``'s queue up to frame ``frame_id`` (async mode: the first at or after it)."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                data = self._queues[name].get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise self._lost(f"no {name} camera frame {frame_id} within {self.timeout_s:g} s",
                                 timed_out=True) from None
            if data.frame == frame_id or (not self.sync and data.frame > frame_id):
                return data
            if data.frame > frame_id:
                raise CarlaConnectionError(f"{name} camera skipped frame {frame_id} (got {data.frame}) "
                                           f"from {self.where}: is another client ticking this world?")

    def _ego_state(self, t: Any, velocity: Any, c: Any) -> EgoState:
        """The ego as the server reports it, its controls clamped into Control's ranges where they enter."""
        yaw, pitch = math.radians(t.rotation.yaw), math.radians(t.rotation.pitch)
        speed = (math.cos(pitch) * (velocity.x * math.cos(yaw) + velocity.y * math.sin(yaw))
                 + velocity.z * math.sin(pitch))  # along the car's forward axis
        control = Control(throttle=min(1.0, max(0.0, c.throttle)), steer=min(1.0, max(-1.0, c.steer)),
                          brake=min(1.0, max(0.0, c.brake)), hand_brake=bool(c.hand_brake),
                          reverse=bool(c.reverse), autopilot=self._autopilot)
        return EgoState(transform=Transform(t.location.x, t.location.y, t.location.z, t.rotation.pitch,
                                            t.rotation.yaw, t.rotation.roll), speed_mps=float(speed), control=control)

    def _guard(self) -> None:
        if self._closed:
            raise CarlaConnectionError(f"the CARLA source for {self.where} is closed")

    def _lost(self, error: object, timed_out: bool = False) -> CarlaConnectionError:
        if isinstance(error, CarlaConnectionError):  # already says what went wrong
            return error
        self._server_lost = not carla_server_answers(self.host, self.port, timeout_s=self._patience)
        # A hung server still accepts TCP connections (the kernel does): the time-out itself says it
        # stopped answering. libcarla's TimeoutException arrives as RuntimeError("time-out of N ms ...").
        self._server_hung = not self._server_lost and (timed_out or "time-out" in str(error))
        state = "disconnected" if self._server_lost else "stopped answering"
        return CarlaConnectionError(f"the CARLA server at {self.where} {state}: {error}")

    def close(self) -> None:
        """Put the server back as the drive found it. Idempotent, never raises, and safe from a signal
        handler (a second call while the first runs returns at once)."""
        if not self._close_lock.acquire(blocking=False):
            return
        try:
            if self._closed:
                return
            self._closed = True
            (self._abandon if self._server_hung else self._teardown)()
            if self._note is not None:
                self._note.release(restored=self._restored)
            # Drop the client objects now, sensors first and the client last: left to interpreter exit,
            # libcarla's destructors run in any order and abort ("terminate called ...") if the server died.
            self._sensors.clear()
            self._queues.clear()
            self._ego = self._tm = self.world = self.client = None
            gc.collect()
            if self._watch is not None:
                self._watch.close()
        finally:
            self._close_lock.release()

    def _teardown(self) -> None:
        """Stop and destroy the cameras and the ego, switch the TM's sync off, restore the settings; each
        step on its own (``_quietly``), as a server left synchronous is frozen for every other client."""
        if self.client is None:  # the constructor failed before it connected: nothing to put back
            return
        reachable = not self._server_lost and carla_server_answers(self.host, self.port, timeout_s=self._patience)
        self.client.set_timeout(TEARDOWN_TIMEOUT_S if reachable else GONE_TIMEOUT_S)
        for name, sensor in self._sensors.items():
            _quietly(f"stop {name} camera", sensor.stop)
        if not reachable:
            log.warning("CARLA server at %s is gone: nothing to clean up there", self.where)
            return
        actors = [(a.id, a.type_id) for a in [*self._sensors.values(), self._ego] if a is not None]  # cameras first
        for failure in destroy_actors(self.client, self._carla, actors) if actors else []:
            log.warning("CARLA teardown: could not destroy %s", failure)
        if self.sync and self._original_settings is not None:
            # One more tick so the episode state (the TM's thread reads it) no longer lists the actors.
            _quietly("final tick", self.world.tick, TEARDOWN_TIMEOUT_S)
        if self._tm is not None:
            _quietly("traffic manager sync off", self._tm.set_synchronous_mode, False)
            # This source owns the TM on tm_port: shut down, or its thread keeps polling the server.
            _quietly("traffic manager shut down", self._tm.shut_down)
        if self._original_settings is not None:
            self._restored = _quietly("restore world settings", self.world.apply_settings, self._original_settings)
            if not self._restored:  # the server stays as this drive set it (synchronous: frozen for others)
                failure = (f"could not restore the world settings of the CARLA server at {self.where}"
                           + (f"; the next drive from this machine restores them from {self._note.path}"
                              if self._note.written else ""))
                log.error("CARLA teardown: %s", failure)
                self.teardown_failures.append(failure)

    def _abandon(self) -> None:
        """Teardown for a hung server: each RPC would wait out its time-out, and one that times out in
        libcarla's Traffic Manager aborts the process. Nothing can be restored there anyway."""
        left = [f"the ego ({self._ego.type_id})" if self._ego is not None else "",
                f"its {len(self._sensors)} cameras" if self._sensors else "",
                "synchronous mode on" if self.sync and self._original_settings is not None else ""]
        note = (f" (the next drive from this machine at this server can restore the settings from before "
                f"this one and remove its actors, from the note {self._note.path})" if self._note.written else "")
        log.warning("CARLA server at %s stopped answering: left on it %s; restart it, or clean up with a client "
                    "once it answers%s", self.where, ", ".join(filter(None, left)) or "nothing", note)
        for name, sensor in self._sensors.items():
            _quietly(f"stop {name} camera", sensor.stop)  # client side only: closes the camera stream


def _quietly(what: str, fn: Any, *args: Any) -> bool:
    """Run one teardown step; False (and a warning) when it failed."""
    log.debug("CARLA teardown: %s", what)  # the last of these names the step a hung exit is stuck in
    try:
        fn(*args)
    except Exception as error:  # teardown goes on: every later step still matters
        log.warning("CARLA teardown: %s failed: %s", what, error)
        return False
    return True
