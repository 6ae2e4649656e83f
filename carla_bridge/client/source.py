"""CarlaSource: SceneFrames from a CARLA 0.9.16 server through the real ``carla`` client library.

The pattern of CARLA's PythonAPI/examples/synchronous_mode.py and manual_control.py: synchronous mode
with a fixed delta, an ego car (role_name ``hero``) at a spawn point picked by the seed, cameras at
one hood transform (x=1.6, z=1.7) whose frames are paired by frame id (one queue per sensor, drained
after each ``world.tick()`` until ``image.frame == tick``), the Traffic Manager for autopilot, and a
teardown that always runs, also after errors and from signal handlers (:meth:`close`). Where no
teardown can run (SIGKILL, a crash), a note on disk lets the next session restore the settings from
before this one (carla_bridge.client.lease).
This file is the source itself: its options, connecting, the Source protocol, the ticks and the
frames they make, and telling a lost server from a hung one. Its parts live beside it, one job each:
carla_bridge.client.connect (CarlaConnectionError, the address checks), carla_bridge.client.takeover (the
check-in with the server's lease, the clean-up after drives that died), carla_bridge.client.spawn (the
ego, its cameras, the Traffic Manager) and carla_bridge.client.teardown (what close does).
Byte formats are decoded by carla_bridge.client.codec. ``carla`` is imported only when a source is made.
"""

from __future__ import annotations

import logging
import math
import queue
import random
import threading
import time
from typing import Any

from carla_bridge.client import codec as carla_codec
from carla_bridge.client import spawn as carla_spawn
from carla_bridge.client import teardown as carla_teardown
from carla_bridge.client.connect import START_HINT, CarlaConnectionError, check_address, import_carla
from carla_bridge.client.probe import carla_server_answers
from carla_bridge.client.spawn import CAMERA_BLUEPRINTS, GENERATIONS, make_camera_queue  # noqa: F401 (the last: tests')
from carla_bridge.client.takeover import check_in
from carla_bridge.core.frames import Control, EgoState, SceneFrame, SourceBase, Transform
from carla_bridge.client.lease import ServerLease

log = logging.getLogger("carla_bridge.client.source")

WEATHER_PRESETS = (
    "ClearNoon", "CloudyNoon", "WetNoon", "WetCloudyNoon", "SoftRainNoon", "MidRainyNoon", "HardRainNoon",
    "ClearSunset", "CloudySunset", "WetSunset", "WetCloudySunset", "SoftRainSunset", "MidRainSunset",
    "HardRainSunset", "ClearNight", "CloudyNight", "WetNight", "SoftRainNight",
)
# TCP probes (before each autopilot tick, after an error, before teardown) wait this long at most: a
# server that is gone refuses at once, but a loaded one can leave its accept backlog full, the SYN is
# dropped and the kernel resends it only after 1 s. With 0.5 s such a live server was taken for dead
# (a drive ended with "stopped answering", a teardown skipped restoring the settings).
PROBE_PATIENCE_S = 2.0


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
        self._carla = import_carla()
        try:
            self._connect()
            carla_spawn.spawn(self)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ setup
    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    def _connect(self) -> None:
        carla = self._carla
        check_address(self.host, self.port, self.timeout_s)
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
        original, settings = check_in(self._lease, self.world, self.client, carla, self._where(), self.sync,
                                      self.delta_s)
        self._original_settings = original
        self.world.apply_settings(settings)

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
                    carla_spawn.traffic_manager(self)
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
            carla_teardown.teardown(self)
        finally:
            self._close_lock.release()


def _is_timeout(error: object) -> bool:
    """libcarla's TimeoutException reaches Python as RuntimeError("time-out of N ms while waiting for the
    simulator ..."): its text is the only mark it carries."""
    return "time-out" in str(error)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height) in pixels, got {size!r}") from None
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise ValueError(f"size sides must lie in 16..8192 pixels, got {width}x{height}")
    return width, height
