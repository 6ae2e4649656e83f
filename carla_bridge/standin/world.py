"""The stand-in's simulation state: the procedural world behind CARLA's actors, settings, weather
and ticks.

Each tick advances the procedural world (vehicles move by the controls they were last given, or by
the world's own autopilot), renders every subscribed camera at its world pose and size, and
publishes the camera frames and then the episode state: the client's ``world.tick()`` returns when
the episode state of that frame arrives, so by then the camera frames are already on their way.

rpc::WeatherParameters of CARLA 0.9.16 on the wire (14 floats, checked against the real client):
cloudiness, precipitation, precipitation_deposits, wind_intensity, sun_azimuth_angle,
sun_altitude_angle, fog_density, fog_distance, fog_falloff, wetness, scattering_intensity,
mie_scattering_scale, rayleigh_scattering_scale, dust_storm. The procedural world has a handful of
named presets; a client's weather is mapped to the preset whose name best describes it.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time

from carla_bridge.client import codec as carla_codec
from carla_bridge.core.frames import Control, Transform
from carla_bridge.core.values import is_real
from carla_bridge.procedural import GBuffer, ProceduralWorld
from carla_bridge.procedural.config import check_camera
from carla_bridge.standin import protocol
from carla_bridge.standin.actors import SPECTATOR_ID, ActorRecord, ActorRegistry, compose, description_attributes
from carla_bridge.standin.streaming import StreamServer

log = logging.getLogger("carla_bridge.standin.world")

EPISODE_STREAM = 1
ASYNC_DELTA_S = 0.05
PARKING_OFFSET_M = 10_000.0  # where the procedural world's undestroyable ego waits, beyond any camera
PROCEDURAL_MAX_STEP_S = 1.0  # the longest step ProceduralWorld.advance takes
SUBSCRIBE_WAIT_S = 1.0  # how long a tick waits for a camera whose token was just resolved to subscribe
# rpc::EpisodeSettings of CARLA 0.9.16 (11 fields): synchronous_mode, no_rendering_mode,
# fixed_delta_seconds (optional), substepping, max_substep_delta_time, max_substeps,
# max_culling_distance, deterministic_ragdolls, tile_stream_distance, actor_active_distance,
# spectator_as_ego. The defaults are a fresh CARLA server's.
DEFAULT_SETTINGS = [False, False, [False], True, 0.01, 10, 0.0, False, 3000.0, 2000.0, True]

FIELDS = (
    "cloudiness", "precipitation", "precipitation_deposits", "wind_intensity", "sun_azimuth_angle",
    "sun_altitude_angle", "fog_density", "fog_distance", "fog_falloff", "wetness",
    "scattering_intensity", "mie_scattering_scale", "rayleigh_scattering_scale", "dust_storm",
)
DEFAULT_WEATHER = [10.0, 0.0, 0.0, 5.0, 0.0, 45.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.03, 0.0331, 0.0]
"""A fresh CARLA server's weather (ClearNoon-like)."""


def describe(parameters: list) -> set[str]:
    """Words that describe the weather: time of day, sky, precipitation."""
    p = dict(zip(FIELDS, (float(v) for v in parameters)))
    words: set[str] = set()
    altitude = p.get("sun_altitude_angle", 45.0)
    if altitude < 0.0:
        words |= {"night", "dark", "sunset", "dusk"}  # the nearest light a world without night has
    elif altitude < 20.0:
        words |= {"sunset", "dusk", "evening", "dawn"}
    else:
        words |= {"noon", "day", "midday"}
    if p.get("precipitation", 0.0) > 20.0:
        words |= {"rain", "rainy", "wet"}
    elif p.get("wetness", 0.0) > 30.0 or p.get("precipitation_deposits", 0.0) > 30.0:
        words |= {"wet"}
    if p.get("cloudiness", 0.0) > 50.0:
        words |= {"cloudy", "overcast", "cloud"}
    elif p.get("fog_density", 0.0) > 20.0:
        words |= {"fog", "foggy"}
    else:
        words |= {"clear", "sunny"}
    return words


def weather_index(parameters: list, names: list[str]) -> int:
    """Index of the preset in ``names`` whose words match ``parameters`` best (ties: the first)."""
    wanted = describe(parameters)

    def score(name: str) -> int:
        tokens = {t.lower() for t in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", name)}  # CamelCase
        hits = sum(1 for t in tokens if any(t.startswith(w) or w.startswith(t) for w in wanted))
        return hits * 2 - len(tokens)  # prefer names that say only what is true

    return max(range(len(names)), key=lambda i: (score(names[i]), -i))


class SpawnError(RuntimeError):
    """A spawn the world refused (occupied spot, unknown blueprint); answered as a CARLA error."""


class StandinWorld:
    """CARLA episode semantics on top of a ProceduralWorld."""

    def __init__(self, world: ProceduralWorld, streams: StreamServer, map_name: str = "Carla/Maps/ProceduralTown") -> None:
        self.world = world
        self.streams = streams
        self.map_name = map_name
        self.actors = ActorRegistry()
        self.lock = threading.RLock()
        self.frame = 0
        self.elapsed_s = 0.0
        self.episode_id = 1
        self.settings: list = list(DEFAULT_SETTINGS)
        self.weather: list = list(DEFAULT_WEATHER)
        self._velocity: dict[int, tuple[float, float, float]] = {}
        self._parked_ego = False
        self._park_ego()

    # ------------------------------------------------------------------ settings
    @property
    def synchronous(self) -> bool:
        return bool(self.settings[0])

    @property
    def delta_s(self) -> float:
        fixed = self.settings[2]
        return float(fixed[1]) if fixed and fixed[0] else ASYNC_DELTA_S

    def apply_settings(self, settings: list) -> int:
        """Take new episode settings, checked whole before any is stored (a refused one changes nothing),
        and tick once so the client sees a frame carrying them."""
        _check_settings(settings)
        with self.lock:
            self.settings = list(settings) + DEFAULT_SETTINGS[len(settings):]
            log.info("settings: synchronous=%s fixed_delta_seconds=%s", self.synchronous,
                     self.delta_s if self.settings[2][0] else None)
            return self.tick()

    def set_weather(self, parameters: list) -> None:
        with self.lock:
            self.weather = list(parameters)
            name = self.world.set_weather(weather_index(parameters, self.world.weather_names))
            log.info("weather -> %s", name)

    # ------------------------------------------------------------------ actors
    def spawn(self, description: list, transform: Transform, parent_id: int = 0) -> ActorRecord:
        type_id = str(description[1])
        attributes = description_attributes(description)
        with self.lock:
            if parent_id and self.actors.get(parent_id) is None:
                raise SpawnError(f"spawn failed: parent actor {parent_id} not found")
            world_id = camera = None
            if type_id.startswith("vehicle."):
                try:
                    world_id = self._take_vehicle(transform)
                except ValueError as error:
                    raise SpawnError(f"Spawn failed because of collision at spawn position ({error})") from None
                self.world.apply_vehicle_control(world_id, Control())
            elif type_id in protocol.SENSOR_TYPE:
                camera = _camera(attributes)
            elif not type_id.startswith("sensor."):
                raise SpawnError(f"spawn failed: the stand-in has no blueprint {type_id!r}")
            actor_id, stream_id = self.actors.new_ids(sensor=type_id in protocol.SENSOR_TYPE)
            record = ActorRecord(actor_id, type_id, description, attributes, parent_id, transform,
                                 world_id=world_id, stream_id=stream_id, camera=camera)
            log.info("spawned %s id=%d parent=%d at %s", type_id, actor_id, parent_id, transform)
            return self.actors.add(record)

    def destroy(self, actor_id: int) -> bool:
        with self.lock:
            for child in self.actors.children(actor_id):
                # ActorDispatcher.cpp destroys only the actor (and its controller); Unreal detaches the
                # attached actors, which stay where they were, with no parent.
                child.transform, child.parent_id = self.world_pose(child), 0
            record = self.actors.remove(actor_id)
            if record is None:
                return False
            if record.world_id is not None:
                self._release_vehicle(record.world_id)
                self._velocity.pop(record.world_id, None)
            if record.stream_id is not None:
                self.streams.close_stream(record.stream_id)
            log.info("destroyed %s id=%d", record.type_id, actor_id)
            return True

    def vehicle(self, actor_id: int) -> ActorRecord:
        record = self.actors.get(actor_id)
        if record is None or record.world_id is None:
            raise KeyError(f"actor {actor_id} is not a vehicle of this episode")
        return record

    def apply_control(self, actor_id: int, control: Control) -> None:
        with self.lock:
            self.world.apply_vehicle_control(self.vehicle(actor_id).world_id, control)

    def set_autopilot(self, actor_id: int, enabled: bool) -> None:
        """Server-side autopilot: the procedural world's lane follower drives the car."""
        with self.lock:
            world_id = self.vehicle(actor_id).world_id
            current = self.world.vehicle_state(world_id).control
            self.world.apply_vehicle_control(world_id, Control(**{**current.as_dict(), "autopilot": enabled}))

    def set_transform(self, actor_id: int, transform: Transform) -> None:
        with self.lock:
            record = self.actors.get(actor_id)
            if record is None:
                raise KeyError(f"actor {actor_id} not found")
            if record.world_id is not None:
                self.world.set_vehicle_transform(record.world_id, transform)
                for child in self.actors.children(actor_id):
                    child.prev_pose = None  # a teleport: no flow across it
            else:
                record.transform = transform

    def world_pose(self, record: ActorRecord) -> Transform:
        if record.world_id is not None:
            return self.world.vehicle_state(record.world_id).transform
        if record.parent_id:
            parent = self.actors.get(record.parent_id)
            if parent is not None:
                return compose(self.world_pose(parent), record.transform)
        return record.transform

    # ------------------------------------------------------------------ ticking
    def tick(self) -> int:
        """Advance one step, publish camera frames and the episode state; returns the new frame id."""
        with self.lock:
            dt = self.delta_s
            substeps = math.ceil(dt / PROCEDURAL_MAX_STEP_S)  # CARLA takes any dt; the procedural world <= 1 s
            for _ in range(substeps):
                self.world.advance(dt / substeps)
            self.frame += 1
            self.elapsed_s += dt
            self._publish_cameras()
            self.streams.publish(EPISODE_STREAM, self.episode_state())
            return self.frame

    def _publish_cameras(self) -> None:
        groups: dict[tuple, list[ActorRecord]] = {}  # cameras at one pose and size share one render
        for record in self.actors.all():
            if record.stream_id is None:
                continue
            pose = self.world_pose(record)
            if self.streams.wait_for_subscriber(record.stream_id, SUBSCRIBE_WAIT_S):
                groups.setdefault((pose, record.prev_pose, *record.camera), []).append(record)
            record.prev_pose = pose
        for (pose, prev_pose, width, height, fov), cameras in groups.items():
            kinds = {c.type_id for c in cameras}
            try:
                gbuffer = self.world.render_camera(pose, prev_pose, width, height, fov,
                                                   rgb="sensor.camera.rgb" in kinds,
                                                   flow="sensor.camera.optical_flow" in kinds)
            except ValueError as error:  # one bad camera must not stop time for everyone
                log.error("camera %s not rendered: %s", [c.actor_id for c in cameras], error)
                continue
            for camera in cameras:
                payload = protocol.image_payload(protocol.SENSOR_TYPE[camera.type_id], self.frame, self.elapsed_s,
                                                 pose, width, height, fov, _encode(camera.type_id, gbuffer))
                self.streams.publish(camera.stream_id, payload)

    def episode_state(self) -> bytes:
        dynamics = []
        for record in self.actors.all():
            pose = self.world_pose(record)
            if record.world_id is None:
                dynamics.append(protocol.ActorDynamics(record.actor_id, pose))
                continue
            state = self.world.vehicle_state(record.world_id)
            yaw, pitch = math.radians(pose.yaw), math.radians(pose.pitch)
            velocity = (state.speed_mps * math.cos(yaw) * math.cos(pitch),
                        state.speed_mps * math.sin(yaw) * math.cos(pitch), state.speed_mps * math.sin(pitch))
            previous = self._velocity.get(record.world_id, velocity)
            self._velocity[record.world_id] = velocity
            acceleration = tuple((v - p) / self.delta_s for v, p in zip(velocity, previous))
            dynamics.append(protocol.ActorDynamics(record.actor_id, pose, velocity, (0.0, 0.0, 0.0),
                                                   acceleration, state.control))
        return protocol.episode_state_payload(self.frame, self.elapsed_s, self.episode_id, time.time(),
                                              self.delta_s, dynamics)

    def _park_ego(self) -> None:
        """A CARLA server starts without vehicles, but the procedural world always has its ego (it
        cannot be destroyed): park it far outside the town, out of every camera's range, and hand it
        out as the next client vehicle (``_take_vehicle``)."""
        xmin, ymin, _, _ = self.world.town.bounds
        self.world.set_vehicle_transform(self.world.ego_id, Transform(xmin - PARKING_OFFSET_M, ymin - PARKING_OFFSET_M))
        self.world.apply_vehicle_control(self.world.ego_id, Control(brake=1.0))
        self._parked_ego = True

    def _take_vehicle(self, transform: Transform) -> int:
        if self._parked_ego:
            self._parked_ego = False
            self.world.set_vehicle_transform(self.world.ego_id, transform)
            return self.world.ego_id
        return self.world.spawn_vehicle(transform)

    def _release_vehicle(self, world_id: int) -> None:
        if world_id == self.world.ego_id:
            self._park_ego()
        else:
            self.world.destroy_vehicle(world_id)


def _check_settings(settings: list) -> None:
    """rpc::EpisodeSettings as the client sends them; CARLA takes any positive fixed_delta_seconds."""
    if not isinstance(settings, list) or len(settings) < 3 or not isinstance(settings[2], list) or not settings[2]:
        raise ValueError(f"episode settings must be a list of CARLA's fields, got {settings!r}")
    fixed = settings[2]
    if fixed[0] and not (len(fixed) == 2 and is_real(fixed[1], finite=True) and fixed[1] > 0.0):
        raise ValueError(f"fixed_delta_seconds must be a positive number of seconds (or None for a variable "
                         f"step), got {fixed[1:]!r}; the settings stay as they were")


def _camera(attributes: dict[str, str]) -> tuple[int, int, float]:
    """(width, height, fov) of a camera blueprint; refused at spawn where the procedural renderer
    cannot draw it (CARLA itself would take it)."""
    try:
        width, height = int(attributes.get("image_size_x", 800)), int(attributes.get("image_size_y", 600))
        fov = float(attributes.get("fov", 90.0))
        check_camera(width, height, fov, ("image_size_x", "image_size_y", "fov"))
    except ValueError as error:
        raise SpawnError(f"spawn failed: the stand-in cannot render this camera ({error})") from None
    return width, height, fov


def _encode(type_id: str, gbuffer: GBuffer) -> bytes:
    if type_id == "sensor.camera.semantic_segmentation":
        return carla_codec.encode_semantic(gbuffer.labels)
    if type_id == "sensor.camera.depth":
        return carla_codec.encode_depth(gbuffer.depth)
    if type_id == "sensor.camera.optical_flow":
        return carla_codec.encode_flow(gbuffer.flow)
    return carla_codec.encode_rgb(gbuffer.rgb)


__all__ = ["StandinWorld", "SpawnError", "EPISODE_STREAM", "SPECTATOR_ID"]
