"""``python -m carla_bridge.procedural``: benchmark the G-buffer renderer or draw a strip of frames.

  --benchmark --res 512x256 --frames 300   table, then one JSON line (last line of output)
  --strip PATH.png --res 512x256 --seed 3   colorized labels over rgb (top row) and rgb (bottom row)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import imageio.v3 as iio
import numba
import numpy as np
from tqdm import tqdm

from carla_bridge.core import cli
from carla_bridge.core.files import figure_problem, write_atomic
from carla_bridge.core.frames import CAMERA_SIDES, Control, parse_size
from carla_bridge.core.labels import colorize
from carla_bridge.procedural import ProceduralWorld, WorldConfig

STRIP_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")  # what imageio writes here without extra options


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else 0.0


def benchmark(width: int, height: int, frames: int, seed: int, threads: int | None) -> dict:
    t0 = time.perf_counter()
    world = ProceduralWorld(WorldConfig(width=width, height=height, seed=seed, threads=threads))
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    world.reset()  # the first render pays numba's compile (or cache load)
    first_s = time.perf_counter() - t0
    auto = Control(autopilot=True)
    for _ in range(5):
        world.step(auto)
    step_ms, sim_ms, full_ms, label_ms = [], [], [], []
    for _ in tqdm(range(frames), desc="benchmark", leave=False, disable=not sys.stderr.isatty()):
        a = time.perf_counter()
        world.step(auto)
        b = time.perf_counter()
        step_ms.append((b - a) * 1e3)
    pose = world.ego_camera_pose()
    for _ in range(frames):  # render only: full G-buffer, then labels + depth alone
        a = time.perf_counter()
        world.render_camera(pose, pose, width, height, world.config.fov)
        b = time.perf_counter()
        world.render_camera(pose, pose, width, height, world.config.fov, rgb=False, flow=False)
        c = time.perf_counter()
        full_ms.append((b - a) * 1e3)
        label_ms.append((c - b) * 1e3)
    for _ in range(frames):
        a = time.perf_counter()
        world.advance()
        sim_ms.append((time.perf_counter() - a) * 1e3)
    return {
        "fps": round(1e3 / float(np.mean(step_ms)), 1),
        "labels_only_fps": round(1e3 / float(np.mean(label_ms)), 1),
        "render_fps": round(1e3 / float(np.mean(full_ms)), 1),
        "ms_p50": round(_percentile(step_ms, 50), 3),
        "ms_p95": round(_percentile(step_ms, 95), 3),
        "render_ms_p50": round(_percentile(full_ms, 50), 3),
        "labels_ms_p50": round(_percentile(label_ms, 50), 3),
        "sim_ms_p50": round(_percentile(sim_ms, 50), 3),
        "first_frame_s": round(first_s, 3),
        "build_s": round(build_s, 3),
        "res": f"{width}x{height}",
        "frames": frames,
        "threads": numba.get_num_threads(),
        "cpus": os.cpu_count(),
        "vehicles": len(world.vehicles),
        "pedestrians": world.crowd.n,
    }


def strip(path: str, width: int, height: int, seed: int, count: int = 4, gap: int = 40) -> None:
    """Frames along an autopilot drive: top row labels blended over rgb, bottom row rgb."""
    world = ProceduralWorld(WorldConfig(width=width, height=height, seed=seed))
    world.reset()
    top, bottom = [], []
    for k in range(count):
        for _ in range(gap):
            frame = world.step(Control(autopilot=True))
        rgb = frame.rgb.astype(np.float32)
        top.append((0.35 * rgb + 0.65 * colorize(frame.labels)).astype(np.uint8))
        bottom.append(frame.rgb)
        world.set_weather(k + 1)  # show the lighting presets along the strip
    image = np.concatenate([np.concatenate(top, 1), np.concatenate(bottom, 1)], 0)
    suffix = os.path.splitext(path)[1].lower()
    options = {"compress_level": 9} if suffix == ".png" else {}
    write_atomic(path, iio.imwrite("<bytes>", image, extension=suffix, **options))  # whole, or nothing left


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m carla_bridge.procedural", description=__doc__,
                                     formatter_class=cli.HelpFormatter)
    parser.add_argument("--benchmark", action="store_true", help="time step() and render_camera()")
    parser.add_argument("--strip", metavar="PATH.png",
                        help=f"write a strip of a few frames ({', '.join(STRIP_SUFFIXES)})")
    parser.add_argument("--overwrite", action="store_true", help="replace --strip when it exists")
    parser.add_argument("--res", default="512x256", help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=cli.positive_int, default=300, help="benchmark frames")
    parser.add_argument("--seed", type=cli.non_negative_int, default=0, help="town seed")
    parser.add_argument("--threads", type=cli.positive_int, default=None,
                        help="numba threads (default: all the cores numba sees)")
    args = parser.parse_args(argv)
    try:
        width, height = parse_size(args.res, sides=CAMERA_SIDES)
    except ValueError as exc:
        parser.error(str(exc))
    if not args.benchmark and not args.strip:
        parser.error("choose --benchmark or --strip PATH.png")
    problem = args.strip and figure_problem("--strip", args.strip, STRIP_SUFFIXES, args.overwrite)
    if problem:  # now, not after rendering
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.threads is not None and args.threads > numba.config.NUMBA_NUM_THREADS:  # the world clamps to this
        print(f"note: --threads {args.threads}: numba runs at most {numba.config.NUMBA_NUM_THREADS} threads "
              f"here (the cores it sees); using {numba.config.NUMBA_NUM_THREADS}", file=sys.stderr)
    if args.strip:
        strip(args.strip, width, height, args.seed)
        print(f"wrote {args.strip}")
    if args.benchmark:
        result = benchmark(width, height, args.frames, args.seed, args.threads)
        print(f"procedural world benchmark  res {result['res']}  frames {result['frames']}  "
              f"threads {result['threads']}/{result['cpus']} cpus")
        for label, key, ms in (("step (sim + full G-buffer)", "fps", "ms_p50"),
                               ("render full G-buffer", "render_fps", "render_ms_p50"),
                               ("render labels + depth", "labels_only_fps", "labels_ms_p50")):
            print(f"  {label:<28} {result[key]:>8.1f} fps   p50 {result[ms]:7.3f} ms")
        print(f"  simulation only p50 {result['sim_ms_p50']:.3f} ms; first frame {result['first_frame_s']:.2f} s "
              f"(numba compile or cache load); world build {result['build_s']:.2f} s")
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
