"""``python -m game.bench proxy``: what the CARLA proxy adds per frame per neural camera beyond the render.

Starts the stand-in and ``python -m carla_bridge.proxy`` in front of it (processes of their own: the
carla client holds the GIL while it waits), drives one synchronous car with N rgb cameras through the
proxy for --ticks ticks, then prints each camera's figures as the proxy measured them (from the second
helper frame's arrival to the neural frame's send, less the render: decode, pair, encode, send) and,
for context, the client's wall time per tick: with no camera, direct and through the proxy (the
RPC forwarding and the episode-state relay), and with its neural frames.
"""

from __future__ import annotations

import argparse
import queue
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from carla_bridge.core import cli
from carla_bridge.core.frames import parse_size

REPO = Path(__file__).resolve().parents[2]
FIGURES = re.compile(r"neural camera \d+: .*")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m game.bench proxy", description=__doc__.splitlines()[0])
    parser.add_argument("--res", default="256x128", help="camera WIDTHxHEIGHT (default: 256x128)")
    parser.add_argument("--cameras", type=cli.positive_int, default=1, help="neural cameras (default: 1)")
    parser.add_argument("--ticks", type=cli.positive_int, default=100, help="timed ticks (default: 100)")
    parser.add_argument("--port", type=int, default=24000, help="stand-in port; the proxy takes PORT+2 "
                        "(each uses its port + 1 too; default: 24000)")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "cpu.safetensors",
                        help="generator weights (default: models/cpu.safetensors)")
    return parser.parse_args(argv)


def _start(argv: list[str]) -> subprocess.Popen:
    """A server process, once it printed READY (it prints it when both its ports listen)."""
    process = subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=REPO)
    ready = process.stdout.readline()
    if not ready.startswith("READY"):
        process.kill()
        raise RuntimeError(f"{argv[0]} did not start: {ready!r} {process.stderr.read()[-2000:]}")
    return process


def _stop(process: subprocess.Popen) -> str:
    """SIGTERM, wait; its log."""
    process.send_signal(signal.SIGTERM)
    _, log = process.communicate(timeout=30)
    return log


def _drive(port: int, size: tuple[int, int], cameras: int, ticks: int) -> list[float]:
    """Seconds per tick, from world.tick() until every neural frame of that tick is in the client's hands."""
    import carla  # the client library: the carla extra

    client = carla.Client("127.0.0.1", port)
    client.set_timeout(30.0)
    world = client.get_world()
    original = world.get_settings()
    settings = world.get_settings()
    settings.synchronous_mode, settings.fixed_delta_seconds = True, 0.05
    world.apply_settings(settings)
    car = world.spawn_actor(world.get_blueprint_library().filter("vehicle.*")[0],
                            world.get_map().get_spawn_points()[0])
    blueprint = world.get_blueprint_library().find("sensor.camera.rgb")
    blueprint.set_attribute("image_size_x", str(size[0]))
    blueprint.set_attribute("image_size_y", str(size[1]))
    sensors, frames = [], queue.Queue()
    for index in range(cameras):
        sensors.append(world.spawn_actor(blueprint, carla.Transform(carla.Location(x=1.5, z=2.0),
                                                                    carla.Rotation(yaw=30.0 * index)), attach_to=car))
        sensors[-1].listen(frames.put)
    seconds = []
    try:
        for tick in range(ticks + 5):  # 5 untimed: the first renders warm up
            car.apply_control(carla.VehicleControl(throttle=0.6))
            began = time.perf_counter()
            frame = world.tick()
            got = 0
            while got < cameras:
                got += frames.get(timeout=30.0).frame == frame
            if tick >= 5:
                seconds.append(time.perf_counter() - began)
    finally:
        for sensor in sensors:
            sensor.stop()
        client.apply_batch_sync([carla.command.DestroyActor(a.id) for a in (*sensors, car)])
        world.apply_settings(original)
    return seconds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = parse_size(args.res, "--res")
    standin = _start(["carla_bridge.standin", "--port", str(args.port), "--pedestrians", "0"])
    try:
        proxy = _start(["carla_bridge.proxy", "--port", str(args.port + 2), "--carla-port", str(args.port),
                        "--model", str(args.model), "--backend", "torch", "--device", "cpu"])
        try:
            direct = _drive(args.port, size, 0, args.ticks)  # the RPC and episode-state relay, no camera
            relayed = _drive(args.port + 2, size, 0, args.ticks)
            seconds = _drive(args.port + 2, size, args.cameras, args.ticks)
        finally:
            log = _stop(proxy)
    finally:
        _stop(standin)
    print(f"proxy at {size[0]}x{size[1]}, {args.cameras} camera(s), {args.ticks} ticks, torch on the cpu")
    for line in FIGURES.findall(log):
        print(" ", line)
    print(f"  client: a tick with no camera, median {1e3 * statistics.median(direct):.2f} ms direct, "
          f"{1e3 * statistics.median(relayed):.2f} ms through the proxy")
    print(f"  client: world.tick() to its neural frames, median {1e3 * statistics.median(seconds):.1f} ms "
          f"(render included)")
    return 0
