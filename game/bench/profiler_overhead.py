"""Profiler overhead benchmark: the same frame loop with profiling on and off.

    python -m game.bench profiler --frames 300 [--res 256x128] [--preset tiny] [--block 10]

Workload: the procedural world plus a Renderer (torch on the CPU, randomly initialised preset), or
with --synthetic a fixed numpy workload (game.bench.workloads: one synthetic frame, a stand-in renderer). Each frame runs exactly what the
game loop runs under --profile (begin_frame, source/render/display stages, the renderer's spans,
live_stats for the HUD, end_frame); "off" uses Profiler(enabled=False) through the same calls.

Drift cancels by interleaving: frames run in blocks of --block frames in the order on, off, off, on,
on, off, ... (ABBA), and the overhead is the median over adjacent (on, off) block pairs of
median(on) / median(off) - 1, so slow trends of a shared machine hit both sides of every pair.
A direct figure is printed as well: the profiler calls alone (no workload) timed on vs off, as a
fraction of the median frame time. The last line of output is a JSON object.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from carla_bridge.core.frames import CAMERA_SIDES, Control, parse_size
from carla_bridge.procedural import ProceduralWorld, WorldConfig
from game.bench.timing import print_result
from game.bench.workloads import StandInRenderer, frame_pool
from game.profiler.hooks import hud_lines, timed_render
from game.profiler.profiler import Profiler
from neural_render.model import build_generator
from neural_render.runtime import Renderer

LIMIT_PCT = 2.0  # the profiling budget: at most 2% of the median frame time


def build_workload(size: tuple[int, int], preset: str, force_synthetic: bool = False, device: str = "cpu",
                   ) -> tuple[str, Callable[[], Any], Any, Callable[[], None]]:
    """(description, step() -> frame, renderer, close)."""
    if force_synthetic:
        frame = frame_pool(size, count=1)[0]
        return "synthetic numpy workload", lambda: frame, StandInRenderer(), lambda: None
    renderer = Renderer(build_generator(preset).eval(), backend="torch", device=device, size=size)
    world = ProceduralWorld(WorldConfig(width=size[0], height=size[1], seed=0))
    world.reset(0)
    drive = Control(autopilot=True)
    return (f"procedural world + {preset} renderer (torch {device})", lambda: world.step(drive),
            renderer, world.close)


def run_frame(profiler: Profiler, step: Callable[[], Any], renderer: Any, sink: list) -> int:
    """One frame as the game loop runs it under --profile; returns its wall time in ns."""
    t0 = time.perf_counter_ns()
    profiler.begin_frame()
    with profiler.stage("source"):
        frame = step()
    image = timed_render(profiler, renderer, frame)
    with profiler.stage("display"):
        sink[0] = np.ascontiguousarray(image[::-1])  # stands in for the blit + flip
    hud_lines(profiler)  # the HUD reads live figures every frame
    profiler.end_frame()
    return time.perf_counter_ns() - t0


def direct_cost_ns(repeats: int = 2000, use_cuda: bool = False) -> float:
    """Per-frame cost of the profiler calls alone (on minus off), with a no-op workload."""
    class _Nop:
        last_timings = {"preprocess": (0, 1), "upload": (1, 2), "inference": (2, 3), "download": (3, 4)}

        def render(self, frame: Any) -> np.ndarray:
            return _IMAGE

    sink: list = [None]
    best = {}
    for enabled in (True, False, True, False):
        profiler = Profiler(enabled=enabled, warmup_frames=0, use_cuda=use_cuda and enabled)
        times = [run_frame(profiler, lambda: None, _Nop(), sink) for _ in range(repeats)]
        best[enabled] = min(best.get(enabled, float("inf")), float(np.median(times)))
    return max(0.0, best[True] - best[False])


_IMAGE = np.zeros((2, 2, 3), np.uint8)


def measure(frames: int, size: tuple[int, int], block: int, preset: str, warmup: int = 10,
            force_synthetic: bool = False, device: str = "cpu", cuda_events: bool = True) -> dict[str, Any]:
    if frames < 2 * block:
        raise ValueError(f"--frames must be at least 2 * --block ({2 * block}), got {frames}")
    workload, step, renderer, close = build_workload(size, preset, force_synthetic, device)
    # On CUDA the "on" side also records CUDA events and NVTX ranges, as `--profile` does there.
    on_cuda = cuda_events and device.startswith("cuda") and not workload.startswith("synthetic")
    profilers = {True: Profiler(enabled=True, warmup_frames=0, use_cuda=on_cuda), False: Profiler(enabled=False)}
    sink: list = [None]
    try:
        for _ in range(warmup):  # caches, allocator, lazy init: outside both sides
            run_frame(profilers[False], step, renderer, sink)
        n_blocks = frames // block
        order = [(k % 4) in (0, 3) for k in range(n_blocks)]  # on, off, off, on, ... (ABBA)
        blocks: list[tuple[bool, list[int]]] = []
        for enabled in order:
            times = [run_frame(profilers[enabled], step, renderer, sink) for _ in range(block)]
            blocks.append((enabled, times))
    finally:
        close()
    on = [t for enabled, ts in blocks if enabled for t in ts]
    off = [t for enabled, ts in blocks if not enabled for t in ts]
    pair_ratios = []
    for k in range(0, len(blocks) - 1, 2):
        (e1, t1), (_, t2) = blocks[k], blocks[k + 1]
        on_t, off_t = (t1, t2) if e1 else (t2, t1)
        pair_ratios.append(np.median(on_t) / np.median(off_t) - 1.0)
    median_off_ms = float(np.median(off)) / 1e6
    direct_ns = direct_cost_ns(use_cuda=on_cuda)
    overhead = 100.0 * float(np.median(pair_ratios))
    return {
        "workload": workload,
        "cuda_events": on_cuda,
        "frames": len(on) + len(off),
        "res": f"{size[0]}x{size[1]}",
        "block": block,
        "median_off_ms": round(median_off_ms, 4),
        "median_on_ms": round(float(np.median(on)) / 1e6, 4),
        "overhead_pct": round(overhead, 3),
        "direct_cost_us_per_frame": round(direct_ns / 1e3, 3),
        "direct_overhead_pct": round(100.0 * direct_ns / 1e6 / median_off_ms, 4),
        "limit_pct": LIMIT_PCT,
        "within_limit": overhead <= LIMIT_PCT,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m game.bench profiler", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="measured frames, on + off (default 300)")
    parser.add_argument("--res", default="256x128", help="WIDTHxHEIGHT (default 256x128)")
    parser.add_argument("--block", type=int, default=10, help="frames per interleaved block (default 10)")
    parser.add_argument("--preset", default="tiny", help="generator preset of the renderer (default tiny)")
    parser.add_argument("--device", default="cpu", help="renderer device, cpu or cuda (default cpu)")
    parser.add_argument("--host-only", action="store_true",
                        help="on CUDA, profile without CUDA events and NVTX ranges (host timing only)")
    parser.add_argument("--synthetic", action="store_true", help="use the fixed synthetic workload")
    args = parser.parse_args(argv)
    try:
        size = parse_size(args.res, sides=CAMERA_SIDES)
        if args.block < 1:
            raise ValueError(f"--block must be >= 1, got {args.block}")
        result = measure(args.frames, size, args.block, args.preset, force_synthetic=args.synthetic,
                         device=args.device, cuda_events=not args.host_only)
    except ValueError as error:
        parser.error(str(error))
    print(f"workload: {result['workload']} at {result['res']}, {result['frames']} frames in blocks of "
          f"{result['block']} (on/off interleaved ABBA)")
    print(f"median frame: off {result['median_off_ms']:.3f} ms, on {result['median_on_ms']:.3f} ms; "
          f"overhead {result['overhead_pct']:+.2f}% (limit {LIMIT_PCT}%), profiler calls alone "
          f"{result['direct_cost_us_per_frame']:.1f} us/frame = {result['direct_overhead_pct']:.3f}%")
    print_result(result)
    return 0
