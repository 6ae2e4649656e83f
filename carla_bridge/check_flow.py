"""`python -m carla_bridge.check_flow --host H --port P`: does this CARLA build's optical flow follow
our reading of it (carla_bridge.client.codec)?

CARLA's docs (sensor_data.yml, carla PR 4104) say a flow value in [-2, 2] "scales to [-2 size, 2 size]";
the engine's velocity buffer, which we follow, gives half that (CARLA_FLOW_NDC_SPAN = 2: a value of 2
is one image size), with the sign of CARLA_FLOW_SIGN. Carla issue 4795 warps frames both ways and
agrees with the engine. This command settles it for the server at hand: it drives a car a few
synchronous ticks with an rgb and an optical-flow camera on one mount, warps frame t-1's image by
frame t's decoded flow under each reading (our scale and sign, twice the scale, each axis flipped) and
prints the photometric error of each; the reading with the least error is the build's convention.

It needs only numpy and the carla client: its backward warp is a small bilinear one of its own (the
model's warp lives in neural_render, which carla_bridge may not import). Exit status: 0 when our
reading wins, 1 when another does (the line says which constant to change), 2 when the check could
not run (no server, no spawn point) or could not tell (the camera barely moved).
"""

from __future__ import annotations

import argparse
import queue
import sys
from dataclasses import dataclass

import numpy as np

from carla_bridge.client.codec import CARLA_FLOW_NO_VELOCITY, carla_flow_to_backward_pixels
from carla_bridge.core.cli import positive_float, positive_int
from carla_bridge.core.frames import CAMERA_SIDES, parse_size
from carla_bridge.core.net import carla_server_answers, host_problem

# name -> (scale, sign x, sign y) relative to our reading (codec.CARLA_FLOW_NDC_SPAN, CARLA_FLOW_SIGN).
READINGS: dict[str, tuple[float, float, float]] = {
    "ours (scale 1)": (1.0, 1.0, 1.0),
    "docs (scale 2)": (2.0, 1.0, 1.0),
    "scale 1, x flipped": (1.0, -1.0, 1.0),
    "scale 1, y flipped": (1.0, 1.0, -1.0),
    "scale 2, x flipped": (2.0, -1.0, 1.0),
    "scale 2, y flipped": (2.0, 1.0, -1.0),
}
OURS, DOCS = "ours (scale 1)", "docs (scale 2)"
STILL = "no flow (identity)"
FIX = {
    DOCS: "set CARLA_FLOW_NDC_SPAN = 1.0 in carla_bridge/client/codec.py",
    "scale 1, x flipped": "negate CARLA_FLOW_SIGN[0] in carla_bridge/client/codec.py",
    "scale 1, y flipped": "negate CARLA_FLOW_SIGN[1] in carla_bridge/client/codec.py",
    "scale 2, x flipped": "set CARLA_FLOW_NDC_SPAN = 1.0 and negate CARLA_FLOW_SIGN[0] in carla_bridge/client/codec.py",
    "scale 2, y flipped": "set CARLA_FLOW_NDC_SPAN = 1.0 and negate CARLA_FLOW_SIGN[1] in carla_bridge/client/codec.py",
}
MIN_GAIN = 0.9  # a reading must beat the identity warp by 10 % to show the camera moved enough to tell


def backward_warp(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``image`` (H, W, C) at (x + flow_x, y + flow_y), bilinearly: our backward-flow convention
    (ARCHITECTURE.md, "Conventions"). Returns the warped image (float32) and where the sample point
    lies inside the image."""
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    sx, sy = xs + flow[..., 0], ys + flow[..., 1]
    inside = (sx >= 0) & (sx <= width - 1) & (sy >= 0) & (sy <= height - 1)
    sx, sy = np.clip(sx, 0, width - 1), np.clip(sy, 0, height - 1)
    x0, y0 = np.minimum(sx.astype(np.int64), width - 2), np.minimum(sy.astype(np.int64), height - 2)
    ax, ay = (sx - x0)[..., None], (sy - y0)[..., None]
    pixels = image.astype(np.float32)
    top = pixels[y0, x0] * (1 - ax) + pixels[y0, x0 + 1] * ax
    bottom = pixels[y0 + 1, x0] * (1 - ax) + pixels[y0 + 1, x0 + 1] * ax
    return top * (1 - ay) + bottom * ay, inside


def warp_errors(previous: np.ndarray, current: np.ndarray, carla_flow: np.ndarray) -> dict[str, float]:
    """Mean absolute rgb error (0..255) of ``current`` against ``previous`` warped by ``carla_flow``
    (the camera's raw (H, W, 2) values) under each reading and under no flow at all, over the pixels
    every reading keeps inside the image and where the camera wrote a velocity."""
    base = carla_flow_to_backward_pixels(carla_flow)
    written = ~np.all(carla_flow == CARLA_FLOW_NO_VELOCITY, axis=-1)  # the sky: flow 0 for every reading
    warped, keep = {STILL: previous.astype(np.float32)}, written
    for name, (scale, sign_x, sign_y) in READINGS.items():
        warped[name], inside = backward_warp(previous, base * np.array([sign_x, sign_y], np.float32) * scale)
        keep = keep & inside
    if not keep.any():
        return {name: float("nan") for name in warped}
    target = current.astype(np.float32)
    return {name: float(np.abs(image - target)[keep].mean()) for name, image in warped.items()}


@dataclass
class Verdict:
    errors: dict[str, float]  # reading -> mean error over the drive's frame pairs
    best: str
    moved: bool  # the best reading beat the identity warp clearly

    @property
    def exit_code(self) -> int:
        return 2 if not self.moved else 0 if self.best == OURS else 1

    def lines(self) -> list[str]:
        rows = [f"  {name:<22} {error:7.3f}" for name, error in sorted(self.errors.items(), key=lambda kv: kv[1])]
        if not self.moved:
            verdict = ("inconclusive: no reading beats the unwarped frame by 10 %; the camera barely moved "
                       "(try more --ticks or a higher --throttle)")
        elif self.best == OURS:
            verdict = ("flow matches our convention: sign (CARLA_FLOW_SIGN) and scale (CARLA_FLOW_NDC_SPAN = 2) "
                       "are right for this server")
        else:
            verdict = f"flow does NOT match our convention: it reads as '{self.best}'; {FIX[self.best]}"
        return ["mean |warped frame t-1 - frame t| (rgb 0..255), lower is better:", *rows, verdict]


def judge(pair_errors: list[dict[str, float]]) -> Verdict:
    names = [STILL, *READINGS]
    errors = {name: float(np.nanmean([e[name] for e in pair_errors])) for name in names}
    best = min(READINGS, key=lambda name: errors[name])
    return Verdict(errors, best, moved=errors[best] < MIN_GAIN * errors[STILL])


def drive(client, carla, width: int, height: int, ticks: int, throttle: float, delta_s: float) -> list[dict]:
    """Warp errors of ``ticks`` consecutive frame pairs from a car driving with a slight steer (a turn
    gives every pixel a sideways flow, so scale and sign both show), on a synchronous world whose
    settings and actors are put back afterwards."""
    world = client.get_world()
    original = world.get_settings()
    actors = []
    try:
        settings = world.get_settings()
        settings.synchronous_mode, settings.fixed_delta_seconds = True, delta_s
        world.apply_settings(settings)
        library = world.get_blueprint_library()
        car_bp = library.filter("vehicle.*")[0]
        car = next((c for p in world.get_map().get_spawn_points() if (c := world.try_spawn_actor(car_bp, p))), None)
        if car is None:
            raise RuntimeError("every spawn point of the map is occupied")
        actors.append(car)
        mount = carla.Transform(carla.Location(x=1.6, z=1.7))
        frames: dict[str, queue.Queue] = {}
        for kind in ("rgb", "optical_flow"):
            blueprint = library.find(f"sensor.camera.{kind}")
            blueprint.set_attribute("image_size_x", str(width))
            blueprint.set_attribute("image_size_y", str(height))
            camera = world.spawn_actor(blueprint, mount, attach_to=car)
            actors.append(camera)
            frames[kind] = queue.Queue()
            camera.listen(frames[kind].put)
        car.apply_control(carla.VehicleControl(throttle=throttle, steer=0.2))
        for _ in range(ticks):  # get up to speed
            world.tick()
        previous, pair_errors = None, []
        for _ in range(ticks + 1):
            frame = world.tick()
            rgb, flow = (_frame(frames[kind], frame) for kind in ("rgb", "optical_flow"))
            image = np.frombuffer(rgb.raw_data, np.uint8).reshape(height, width, 4)[:, :, 2::-1]
            if previous is not None:
                carla_flow = np.frombuffer(flow.raw_data, np.float32).reshape(height, width, 2)
                pair_errors.append(warp_errors(previous, image, carla_flow))
            previous = image
        return pair_errors
    finally:
        for actor in reversed(actors):
            if actor.type_id.startswith("sensor."):
                actor.stop()
            actor.destroy()
        world.apply_settings(original)


def _frame(frames: queue.Queue, frame: int, timeout_s: float = 10.0):
    """The image of ``frame`` from a camera's queue (synchronous_mode.py's pattern)."""
    while (image := frames.get(timeout=timeout_s)).frame < frame:
        pass
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m carla_bridge.check_flow", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=positive_int, default=2000)
    parser.add_argument("--res", default="320x240", help="WIDTHxHEIGHT of the two cameras")
    parser.add_argument("--ticks", type=positive_int, default=10, help="ticks to get up to speed, then pairs measured")
    parser.add_argument("--throttle", type=positive_float, default=0.8)
    parser.add_argument("--delta", type=positive_float, default=0.05, help="fixed_delta_seconds of the ticks")
    parser.add_argument("--timeout", type=positive_float, default=10.0, help="seconds the client waits per call")
    args = parser.parse_args(argv)
    try:
        size = parse_size(args.res, sides=CAMERA_SIDES)
    except ValueError as error:
        print(f"check_flow: {error}", file=sys.stderr)
        return 2
    if not args.throttle <= 1.0:
        print(f"check_flow: --throttle must lie in (0, 1], got {args.throttle}", file=sys.stderr)
        return 2
    if problem := host_problem(args.host):
        print(f"check_flow: {problem}: check --host", file=sys.stderr)
        return 2
    if not carla_server_answers(args.host, args.port, timeout_s=2.0):
        print(f"check_flow: no CARLA server answers at {args.host}:{args.port}: start CARLA (./CarlaUE4.sh) "
              "or check --host and --port", file=sys.stderr)
        return 2
    try:
        import carla  # the optional extra: only this check and the CARLA source need it
    except ImportError as error:
        print(f"check_flow: needs the carla 0.9.16 client ({error}): pip install -e .[carla]", file=sys.stderr)
        return 2
    client = carla.Client(args.host, args.port)
    client.set_timeout(args.timeout)
    try:
        pair_errors = drive(client, carla, *size, args.ticks, args.throttle, args.delta)
    except (RuntimeError, queue.Empty) as error:
        print(f"check_flow: the drive at {args.host}:{args.port} failed: {error or 'a camera sent no frame'}",
              file=sys.stderr)
        return 2
    verdict = judge(pair_errors)
    print("\n".join(verdict.lines()))
    return verdict.exit_code


if __name__ == "__main__":
    sys.exit(main())
