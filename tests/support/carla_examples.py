"""CARLA's own PythonAPI examples, cut down to what they ask of a server, run in a process of their own
against a stand-in (a libcarla abort must end that process, not the test run)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from support.carla import REPO, StandinProcess

# PythonAPI/examples/tutorial.py (0.9.16): a car on autopilot with a depth camera listening, ten more
# cars on autopilot, a few seconds of asynchronous simulation, then the camera destroyed and the rest
# by one batch, and the process exits (libcarla's Traffic Manager still running its threads).
TUTORIAL = textwrap.dedent("""
    import random, sys, time
    import carla
    port, tm_port, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    client = carla.Client("127.0.0.1", port)
    client.set_timeout(5.0)
    world = client.get_world()
    library = world.get_blueprint_library()
    traffic_manager = client.get_trafficmanager(tm_port)
    traffic_manager.set_osm_mode(False)
    actor_list, images = [], []
    try:
        spawn_points = world.get_map().get_spawn_points()
        vehicle = world.spawn_actor(random.choice(library.filter("vehicle")), spawn_points[0])
        actor_list.append(vehicle)
        vehicle.set_autopilot(True, tm_port)
        camera_bp = library.find("sensor.camera.depth")
        camera_bp.set_attribute("image_size_x", "32")
        camera_bp.set_attribute("image_size_y", "16")
        camera = world.spawn_actor(camera_bp, carla.Transform(carla.Location(x=1.5, z=2.4)), attach_to=vehicle)
        actor_list.append(camera)
        camera.listen(images.append)
        for transform in spawn_points[1:11]:
            npc = world.try_spawn_actor(random.choice(library.filter("vehicle")), transform)
            if npc is not None:
                actor_list.append(npc)
                npc.set_autopilot(True, tm_port)
        time.sleep(seconds)
    finally:
        camera.destroy()
        client.apply_batch([carla.command.DestroyActor(x) for x in actor_list])
    print("IMAGES", len(images), "ACTORS", len(actor_list), flush=True)
""")

# PythonAPI/examples/synchronous_mode.py's ending (0.9.16): synchronous ticks with a camera on a car,
# then ``for actor in actor_list: actor.destroy()`` with the car listed first, which prints
# "failed to destroy actor N: not found" where the server took the camera down with its car.
SYNCHRONOUS_MODE = textwrap.dedent("""
    import sys
    import carla
    port = int(sys.argv[1])
    client = carla.Client("127.0.0.1", port)
    client.set_timeout(5.0)
    world = client.get_world()
    original = world.get_settings()
    settings = world.get_settings()
    settings.synchronous_mode, settings.fixed_delta_seconds = True, 0.05
    world.apply_settings(settings)
    library = world.get_blueprint_library()
    actor_list = []
    try:
        vehicle = world.spawn_actor(library.find("vehicle.audi.a2"), world.get_map().get_spawn_points()[2])
        actor_list.append(vehicle)
        camera_bp = library.find("sensor.camera.rgb")
        camera_bp.set_attribute("image_size_x", "32")
        camera_bp.set_attribute("image_size_y", "16")
        camera = world.spawn_actor(camera_bp, carla.Transform(carla.Location(x=-5.5, z=2.8)), attach_to=vehicle)
        actor_list.append(camera)
        for _ in range(3):
            world.tick()
    finally:
        world.apply_settings(original)
        for actor in actor_list:
            actor.destroy()
    print("DONE", flush=True)
""")


def run_example(script: str, server: StandinProcess, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    """Run one example script against ``server``; its exit status and output come back."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", script, str(server.port), *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=timeout_s)
