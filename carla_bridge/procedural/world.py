"""ProceduralWorld: the embedded default source (a Source, and the multi-vehicle world behind the
CARLA stand-in server). Town, scenery, actors and the renderer live in the sibling modules."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numba
import numpy as np

from carla_bridge.core.frames import Control, EgoState, SceneFrame, SourceBase, SourceLost, Transform
from carla_bridge.core.values import is_int, is_real
from carla_bridge.procedural.config import (WEATHER_NAMES, WEATHER_PARAMETERS, WEATHERS, WorldConfig, check_camera, check_seed,
                                            check_transform)
from carla_bridge.procedural.crowd import Crowd
from carla_bridge.procedural.ground import build_ground
from carla_bridge.procedural.junctions import right_of_way
from carla_bridge.procedural.kernel import P_COLS, P_CX, P_CY, P_HX, P_HY, render_kernel
from carla_bridge.procedural.materials import GROUND_LABELS, make_noise_table
from carla_bridge.procedural.scenery import (CAR_COLORS, build_grid, build_scenery, pedestrian_template, place,
                                             vehicle_template)
from carla_bridge.procedural.town import Town
from carla_bridge.procedural.vehicles import Vehicle, autopilot, integrate, new_contacts


@dataclass
class GBuffer:
    """One camera's render: labels (H, W) uint8, depth (H, W) float32 m, flow (H, W, 2) float32 px
    (backward, ARCHITECTURE.md), rgb (H, W, 3) uint8 (None where not asked for)."""

    labels: np.ndarray
    depth: np.ndarray
    flow: np.ndarray
    rgb: np.ndarray


class ProceduralWorld(SourceBase):
    """A procedural street town: ``reset``/``step`` give ego-camera SceneFrames (labels, depth, exact
    flow, rgb); the multi-vehicle API lets the CARLA stand-in drive any number of vehicles."""

    name = "procedural"

    def __init__(self, config: WorldConfig | None = None) -> None:
        self.config = config or WorldConfig()
        if self.config.threads is not None:
            numba.set_num_threads(max(1, min(int(self.config.threads), numba.config.NUMBA_NUM_THREADS)))
        self.weather_names: list[str] = list(WEATHER_NAMES)
        self._weather = self.config.weather
        self._noise = make_noise_table()
        self._seed: int | None = None
        self._closed = False
        self._setup(self.config.seed)

    @property
    def seed(self) -> int:
        """The seed of the town being driven: WorldConfig.seed (0 unless set) until reset(seed) picks
        another. Sessions record it, so a drive without --seed can be driven again."""
        return self._seed

    # ---- world construction -------------------------------------------------------------------
    def _setup(self, seed: int) -> None:
        cfg = self.config
        town = self.town if seed == self._seed else Town(seed)
        spawns = town.spawn_points()
        if cfg.n_vehicles + 1 > len(spawns):  # more would stand on top of each other and drive through each other
            raise ValueError(f"WorldConfig.n_vehicles must be at most {len(spawns) - 1} for the town of seed {seed} "
                             f"(one spawn point each, the ego's included), got {cfg.n_vehicles}")
        if seed != self._seed:
            self.town = town
            self._ground, self._gorigin = build_ground(self.town)
            self._static = build_scenery(self.town, self._ground, self._gorigin)
            extent = (self._ground.shape[1] * self._gorigin[2], self._ground.shape[0] * self._gorigin[2])
            self._grid = build_grid(self._static, self._gorigin, extent)
            self._seed = seed
        self._rng = np.random.default_rng([seed, 99])
        self._spawns = spawns
        self._spawn_order = self._rng.permutation(len(self._spawns))
        self._spawn_next = 0
        self.crowd = Crowd(self.town, cfg.n_pedestrians, seed)
        self._ped_templates = [pedestrian_template(self.crowd.shirt[i], self.crowd.param[i])
                               for i in range(self.crowd.n)]
        self.vehicles: dict[int, Vehicle] = {}
        self._templates: dict[int, np.ndarray] = {}
        self._next_id = 1
        self.ego_id = self.spawn_vehicle(self._free_spawn(), kind="car", color=(0.55, 0.1, 0.1))
        for _ in range(cfg.n_vehicles):
            roll = self._rng.random()
            kind = "car" if roll < 0.8 else ("truck" if roll < 0.9 else "bus")
            vid = self.spawn_vehicle(self._free_spawn(), kind=kind)
            self.vehicles[vid].cruise = float(self._rng.uniform(6.0, 10.0))
            self.apply_vehicle_control(vid, Control(autopilot=True))
        self._index, self._time = 0, 0.0
        self._cam_prev: Transform | None = None
        self._ego_moved = False  # set_vehicle_transform teleported the ego: the next frame is a cut

    def _free_spawn(self) -> Transform:
        """The next spawn point (in this seed's shuffled order) at least 15 m from every vehicle; where
        none is, the first one farthest from every vehicle (so a crowded town never stacks two cars)."""
        best, best_d = None, -1.0
        for _ in range(len(self._spawns)):
            t = self._spawns[self._spawn_order[self._spawn_next % len(self._spawns)]]
            self._spawn_next += 1
            d = min((math.hypot(v.x - t.x, v.y - t.y) for v in self.vehicles.values()), default=math.inf)
            if d > 15.0:
                return t
            if d > best_d:
                best, best_d = t, d
        return best

    # ---- Source protocol ----------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise SourceLost("the procedural world is closed")

    def reset(self, seed: int | None = None) -> SceneFrame:
        self._check_open()
        self._setup(self._seed if seed is None else check_seed(seed))
        return self._frame(cut=True)

    def step(self, control: Control) -> SceneFrame:
        self.apply_vehicle_control(self.ego_id, control)
        self._cam_prev = self.ego_camera_pose()
        self.advance()
        return self._frame(cut=False)

    def respawn(self) -> SceneFrame:
        self.set_vehicle_transform(self.ego_id, self._free_spawn())
        self._cam_prev = None
        return self._frame(cut=True)

    def close(self) -> None:
        self._closed = True
        self.vehicles = {}

    def set_weather(self, index: int) -> str:
        self._check_open()
        if not is_int(index):
            raise ValueError(f"weather index must be an integer, got {index!r}")
        self._weather = int(index) % len(WEATHERS)
        return self.weather_names[self._weather]

    # ---- multi-vehicle API --------------------------------------------------------------------
    def spawn_vehicle(self, transform: Transform, kind: str = "car", color=None) -> int:
        self._check_open()
        check_transform(transform, "spawn transform")
        if kind not in ("car", "truck", "bus"):
            raise ValueError(f"vehicle kind must be car, truck or bus, got {kind!r}")
        vid = self._next_id
        self._next_id += 1
        if color is None:
            color = tuple(CAR_COLORS[int(self._rng.integers(len(CAR_COLORS)))])
        self.vehicles[vid] = Vehicle(vid, kind, float(transform.x), float(transform.y),
                                     math.radians(transform.yaw), tuple(color), seed=self._seed)
        self._templates[vid] = vehicle_template(kind, color)
        return vid

    def _vehicle(self, vehicle_id: int) -> Vehicle:
        self._check_open()
        known = is_int(vehicle_id)
        if not known or vehicle_id not in self.vehicles:
            raise ValueError(f"no vehicle with id {vehicle_id!r} (known: {sorted(self.vehicles)})")
        return self.vehicles[vehicle_id]

    def destroy_vehicle(self, vehicle_id: int) -> None:
        self._vehicle(vehicle_id)
        if vehicle_id == self.ego_id:
            raise ValueError("the ego vehicle cannot be destroyed; use respawn() to move it")
        del self.vehicles[vehicle_id]
        del self._templates[vehicle_id]

    def apply_vehicle_control(self, vehicle_id: int, control: Control) -> None:
        v = self._vehicle(vehicle_id)
        v.control = control  # checked where it was made: Control checks its own values
        if control.autopilot and not v.autopilot:
            v.route = []
        v.autopilot = bool(control.autopilot)

    def vehicle_state(self, vehicle_id: int) -> EgoState:
        v = self._vehicle(vehicle_id)
        t = Transform(v.x, v.y, 0.0, 0.0, math.degrees(v.yaw), 0.0)
        return EgoState(transform=t, speed_mps=float(v.speed), control=v.applied)

    def set_vehicle_transform(self, vehicle_id: int, transform: Transform) -> None:
        v = self._vehicle(vehicle_id)
        check_transform(transform, "vehicle transform")
        v.x, v.y, v.yaw = float(transform.x), float(transform.y), math.radians(transform.yaw)
        v.prev, v.speed, v.route = (v.x, v.y, v.yaw), 0.0, []
        if vehicle_id == self.ego_id:
            self._ego_moved = True

    def advance(self, dt: float | None = None) -> None:
        """Move every vehicle and pedestrian one tick (no rendering)."""
        self._check_open()
        if dt is None:
            dt = self.config.delta_s
        elif not is_real(dt, finite=True) or not 0 < dt <= 1.0:
            raise ValueError(f"dt must be a finite number of seconds in (0, 1], got {dt!r}")
        dt = float(dt)
        occupancy: dict[int, list[tuple[float, int, float]]] = {}  # lane -> (s, id, half length)
        lanes: dict[int, int] = {}  # vehicle id -> its lane
        for v in self.vehicles.values():
            if v.autopilot and v.route:
                lane, idx = v.route[0], v.index
            else:
                lane, idx = self.town.nearest_lane(v.x, v.y, v.yaw)
            lanes[v.id] = lane
            occupancy.setdefault(lane, []).append((float(self.town.lanes[lane].s[idx]), v.id, v.size[0] / 2.0))
        for lane_list in occupancy.values():
            lane_list.sort()
        stops = right_of_way(self.vehicles.values(), self.town, self._index, lanes)
        for v in self.vehicles.values():
            v.prev = (v.x, v.y, v.yaw)
            control = autopilot(v, self.town, occupancy, stops.get(v.id, math.inf)) if v.autopilot else v.control
            if v.autopilot:
                control = dataclasses.replace(control, autopilot=True)
            v.applied = control
            x, y, yaw, speed = integrate(v, control, dt)
            if not v.autopilot:  # collide and stop: never drive into a building, wall, pole or tree
                length, width, _ = v.size
                if new_contacts(self._static, self._grid, (v.x, v.y, v.yaw), (x, y, yaw), length / 2, width / 2):
                    x, y, yaw, speed = v.x, v.y, v.yaw, 0.0
            v.x, v.y, v.yaw, v.speed = x, y, yaw, speed
        self.crowd.advance(dt)
        self._index += 1
        self._time += dt

    # ---- rendering ----------------------------------------------------------------------------
    def ego_camera_pose(self, vehicle_id: int | None = None) -> Transform:
        v = self._vehicle(self.ego_id if vehicle_id is None else vehicle_id)
        m = self.config.camera
        c, s = math.cos(v.yaw), math.sin(v.yaw)
        return Transform(v.x + m.x * c - m.y * s, v.y + m.x * s + m.y * c, m.z, 0.0,
                         math.degrees(v.yaw) + m.yaw, 0.0)

    def render_camera(self, pose: Transform, prev_pose: Transform | None, width: int, height: int,
                      fov: float, rgb: bool = True, flow: bool = True) -> GBuffer:
        """Render a level camera at ``pose`` (world; pitch and roll are ignored: the renderer is a
        column ray caster). Flow covers the camera's motion prev_pose -> pose and every actor's motion
        over the last ``advance``; prev_pose None gives zero flow."""
        self._check_open()
        check_camera(width, height, fov)
        check_transform(pose, "camera pose", ("x", "y", "z", "yaw"))
        if pose.z < 0.01:  # at or below the ground plane the ground would get zero or negative depth
            raise ValueError(f"camera pose.z must be above the ground (>= 0.01 m), got {pose.z!r}")
        if prev_pose is not None:
            check_transform(prev_pose, "camera prev_pose", ("x", "y", "z", "yaw"))
        return self._render(pose, prev_pose, width, height, fov, rgb, flow)

    def _render(self, pose: Transform, prev_pose: Transform | None, width: int, height: int,
                fov: float, rgb: bool, flow: bool) -> GBuffer:
        """render_camera for a camera already checked (the ego's: WorldConfig and the vehicle's pose)."""
        fx = width / (2.0 * math.tan(math.radians(fov) / 2.0))
        cam = np.array([pose.x, pose.y, pose.z, math.radians(pose.yaw), 1.0])
        prev = cam.copy() if prev_pose is None else np.array(
            [prev_pose.x, prev_pose.y, prev_pose.z, math.radians(prev_pose.yaw), 1.0])
        if prev_pose is None:
            prev[4] = 0.0
        vehicles = list(self.vehicles.values())
        templates = [self._templates[v.id] for v in vehicles] + self._ped_templates
        now = np.array([(v.x, v.y, v.yaw) for v in vehicles] + [tuple(p) for p in self.crowd.pose]).reshape(-1, 3)
        before = np.array([v.prev for v in vehicles] + [tuple(p) for p in self.crowd.prev]).reshape(-1, 3)
        dyn = place(templates, now)
        if len(dyn):  # cull actors far away or behind the camera
            rx, ry = dyn[:, P_CX] - cam[0], dyn[:, P_CY] - cam[1]
            fwd = rx * math.cos(cam[3]) + ry * math.sin(cam[3])
            reach = np.hypot(dyn[:, P_HX], dyn[:, P_HY]) + 1.0
            dyn = dyn[(fwd > -reach) & (np.hypot(rx, ry) < self.config.max_distance + reach)]
        labels = np.empty((height, width), np.uint8)
        depth = np.empty((height, width), np.float32)
        out_flow = np.zeros((height, width, 2), np.float32)
        out_rgb = np.zeros((height, width, 3), np.uint8)
        g_start, g_items, grid = self._grid
        render_kernel(width, height, fx, cam, prev, self._static, g_start, g_items, grid,
                      np.ascontiguousarray(dyn).reshape(-1, P_COLS), now, before, self._ground, self._gorigin,
                      self._noise, WEATHERS[self.weather_names[self._weather]], GROUND_LABELS,
                      float(self.config.max_distance), rgb, flow, labels, depth, out_flow, out_rgb)
        return GBuffer(labels, depth, out_flow if flow else None, out_rgb if rgb else None)

    def _frame(self, cut: bool) -> SceneFrame:
        cut, self._ego_moved = cut or self._ego_moved, False  # a teleported ego (set_vehicle_transform) jumps
        cfg = self.config
        pose = self.ego_camera_pose()
        g = self._render(pose, None if cut else self._cam_prev, cfg.width, cfg.height, cfg.fov, True, True)
        return SceneFrame(index=self._index, time_s=self._time, labels=g.labels, flow=g.flow, depth=g.depth,
                          rgb=g.rgb, ego=self.vehicle_state(self.ego_id), cut=cut,
                          weather=WEATHER_PARAMETERS[self.weather_names[self._weather]])
