"""What a CarlaSource puts into the world: the ego car, its cameras (and the queues their frames
arrive in), and the Traffic Manager that drives the ego on autopilot.

The rules follow CARLA's PythonAPI/examples/manual_control.py (--filter, --generation, --rolename,
--gamma, the hood camera). ``spawn`` and ``traffic_manager`` work on the source's own state: each
actor is on the source (and in its lease's note) the moment it exists, so that a teardown after an
error or a signal part-way through (carla_bridge.client.teardown, the other end of this) still finds
and destroys it. Kept apart from carla_source.py, which is about driving what is spawned here.
"""

from __future__ import annotations

import logging
import queue
import random
from typing import TYPE_CHECKING, Any

from carla_bridge.client.connect import CarlaConnectionError
from carla_bridge.core.frames import Transform

if TYPE_CHECKING:
    from carla_bridge.client.source import CarlaSource

log = logging.getLogger("carla_bridge.client.spawn")

CAMERA_BLUEPRINTS = {
    "semantic": "sensor.camera.semantic_segmentation",
    "flow": "sensor.camera.optical_flow",
    "depth": "sensor.camera.depth",
    "rgb": "sensor.camera.rgb",
}
CAMERA_MOUNT = Transform(x=1.6, z=1.7)  # manual_control.py's hood camera
GENERATIONS = ("1", "2", "3", "all")  # manual_control.py's --generation values (case-insensitive All)


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
    tests/carla_bridge.client.test_failures.py (test_camera_queue_survives_ctrl_c_in_get) leaves ``Queue`` locked in
    37 to 44 of 150 tries on a loaded 2-core box, ``SimpleQueue`` in none.
    ``SimpleQueue.put`` never blocks and holds no Python-level lock (documented as reentrant)."""
    return queue.SimpleQueue()


def spawn(source: CarlaSource) -> None:
    """Spawn the ego at a free spawn point (the first one picked by the source's seed, then the next
    ones) and attach the source's cameras to it, each listening into its own queue."""
    library = source.world.get_blueprint_library()
    blueprint = _ego_blueprint(library, source._rng, source.vehicle_filter, source.generation, source.rolename,
                               source._where())
    source._spawn_points = list(source.world.get_map().get_spawn_points())
    if not source._spawn_points:
        raise CarlaConnectionError(f"the map at {source._where()} has no spawn points")
    source._spawn_index = source._rng.randrange(len(source._spawn_points))
    for attempt in range(len(source._spawn_points)):
        index = (source._spawn_index + attempt) % len(source._spawn_points)
        source._ego = source.world.try_spawn_actor(blueprint, source._spawn_points[index])
        if source._ego is not None:
            source._spawn_index = index
            break
    if source._ego is None:
        raise CarlaConnectionError(f"every spawn point at {source._where()} is occupied")
    source._lease.add_actors(source._ego)
    log.info("ego %s (id %d) at spawn point %d", source._ego.type_id, source._ego.id, source._spawn_index)
    mount = _camera_mount(source._carla)
    for name in source.cameras:
        camera_bp = _camera_blueprint(library, name, source.size, source.fov, source.gamma)
        sensor = source.world.spawn_actor(camera_bp, mount, attach_to=source._ego)
        source._lease.add_actors(sensor)
        source._sensors[name] = sensor
        source._queues[name] = make_camera_queue()
        sensor.listen(source._queues[name].put)


def _ego_blueprint(library: Any, rng: random.Random, vehicle_filter: str, generation: str, rolename: str,
                   where: str) -> Any:
    """One of the ego's candidate blueprints, picked by ``rng``, with its role name set."""
    blueprint = rng.choice(_ego_candidates(library, vehicle_filter, generation, where))
    if blueprint.has_attribute("role_name"):
        blueprint.set_attribute("role_name", rolename)
    return blueprint


def _ego_candidates(library: Any, vehicle_filter: str, generation: str, where: str) -> list:
    """The ego's blueprints, by id: 4-wheeled vehicles matching the filter, of the generation
    (manual_control.py's rule: a filter that matches one blueprint ignores the generation). Only
    vehicle.* counts: a sensor or a walker has no controls (the drive asks for them each tick)."""
    vehicles = sorted((b for b in library.filter("vehicle.*") if b.id.startswith("vehicle.") and _four_wheels(b)),
                      key=lambda b: b.id)
    wanted = {b.id for b in library.filter(vehicle_filter)}
    cars = [b for b in vehicles if b.id in wanted]
    if not cars:
        examples = ", ".join(b.id for b in vehicles[:3]) or "none here"
        raise ValueError(f"--filter {vehicle_filter!r} matches no 4-wheeled vehicle blueprint on "
                         f"{where}; try vehicle.* or one of {examples}")
    if generation.lower() != "all" and len(cars) > 1:
        cars = [b for b in cars if b.has_attribute("generation")
                and b.get_attribute("generation").as_int() == int(generation)]
        if not cars:
            raise ValueError(f"--filter {vehicle_filter!r} matches no generation {generation} "
                             f"vehicle on {where}; pass --generation All")
    return cars


def _four_wheels(blueprint: Any) -> bool:
    return not blueprint.has_attribute("number_of_wheels") or blueprint.get_attribute("number_of_wheels").as_int() == 4


def _camera_mount(carla: Any) -> Any:
    """CAMERA_MOUNT as a carla.Transform relative to the ego (every camera sits there)."""
    return carla.Transform(carla.Location(x=CAMERA_MOUNT.x, y=CAMERA_MOUNT.y, z=CAMERA_MOUNT.z))


def _camera_blueprint(library: Any, name: str, size: tuple[int, int], fov: float, gamma: float) -> Any:
    """Camera ``name``'s blueprint (a key of CAMERA_BLUEPRINTS) set to the source's size and field of view."""
    width, height = size
    camera_bp = library.find(CAMERA_BLUEPRINTS[name])
    camera_bp.set_attribute("image_size_x", str(width))
    camera_bp.set_attribute("image_size_y", str(height))
    camera_bp.set_attribute("fov", f"{fov:g}")
    if name == "rgb" and camera_bp.has_attribute("gamma"):  # manual_control.py's --gamma
        camera_bp.set_attribute("gamma", f"{gamma:g}")
    return camera_bp


def traffic_manager(source: CarlaSource) -> Any:
    """The Traffic Manager on tm_port, made on the first autopilot request (it runs threads in
    this process, so a drive without autopilot does not pay for it)."""
    if source._tm is None:
        try:
            source._tm = source.client.get_trafficmanager(source.tm_port)
        except RuntimeError as error:
            if "bind error" not in str(error):
                raise
            # libcarla's words blame no one; not the server either (it still answers)
            raise CarlaConnectionError(_tm_port_in_use(source.tm_port, source.port)) from None
        source._tm.set_synchronous_mode(source.sync)
        source._tm.set_osm_mode(False)  # osm mode removes cars at dead ends; CARLA towns have some
        if source.seed is not None:
            source._tm.set_random_device_seed(source.seed)
    return source._tm


def _tm_port_in_use(tm_port: int, port: int) -> str:
    """What to say when the Traffic Manager cannot bind ``tm_port`` (``port``: the server's RPC port)."""
    owner = " (it is the CARLA server's own port)" if tm_port in (port, port + 1) else ""
    return (f"the Traffic Manager cannot listen on port {tm_port}{owner}: the port is in use; "
            f"pass another --tm-port (default 8000)")
