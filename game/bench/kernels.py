"""Where an end-to-end frame spends its time: torch.profiler over `Renderer.render`, top operators.

    python -m game.bench kernels --preset gpu --res 1024x512 --precision fp16 --compile
    python -m game.bench kernels --preset tiny --res 64x32 --frames 5   # CPU dry run

When a speed target is missed, the hottest kernels should be measured in the same run as the figures:
the suite calls `profile_renderer` after its timed paths so its JSON holds both. Warm-up renders (compilation, CUDA-graph capture) happen before the profiler starts, so the
table shows the steady state. The device column is empty on the CPU.
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from carla_bridge.core import cli
from carla_bridge.core.frames import parse_size
from game.bench.generator import device_and_compile_problem
from game.bench.timing import print_result
from game.bench.workloads import frame_pool
from neural_render.model import PRESETS, build_generator
from neural_render.runtime import Renderer


def _self_device_us(event) -> float:
    # torch >= 2.4 names it "device"; older releases "cuda". 0 when no device activity was recorded.
    return float(getattr(event, "self_device_time_total", getattr(event, "self_cuda_time_total", 0.0)) or 0.0)


def _rows(events, key, top: int, frames: int) -> list[dict]:
    rows = sorted(events, key=key, reverse=True)[:top]
    return [{"name": e.key[:120], "calls_per_frame": round(e.count / frames, 2),
             "self_device_ms_per_frame": round(_self_device_us(e) / 1e3 / frames, 4),
             "self_cpu_ms_per_frame": round(e.self_cpu_time_total / 1e3 / frames, 4)} for e in rows]


def profile_renderer(preset: str = "tiny", res: str = "64x32", device: str | None = None, precision: str = "fp32",
                     compile: bool | str = False, frames: int = 20, warmup: int = 5, top: int = 15,
                     backend: str = "torch") -> dict:
    """Profile `frames` renders after `warmup` ones; returns {"top_device": [...], "top_cpu": [...], ...}."""
    width, height = parse_size(res)
    torch.manual_seed(0)
    model = build_generator(preset).eval()
    renderer = Renderer(model, backend=backend, device=device, precision=precision, size=(width, height),
                        compile=compile)
    pool = frame_pool((width, height), count=2)
    for i in range(warmup):
        renderer.render(pool[i % 2])
    cuda = renderer.device_name != "cpu"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for i in range(frames):
            renderer.render(pool[i % 2])
    events = prof.key_averages()
    return {"preset": preset, "res": f"{width}x{height}", "backend": renderer.backend_name,
            "device": renderer.device_name, "precision": precision, "compile": compile, "frames": frames,
            "compiled": renderer.compiled,
            "top_device": _rows(events, _self_device_us, top, frames) if cuda else [],
            "top_cpu": _rows(events, lambda e: e.self_cpu_time_total, top, frames)}


def print_profile(report: dict) -> None:
    for table in ("top_device", "top_cpu"):
        if not report[table]:
            continue
        print(f"{table} (ms per frame, self time)")
        for row in report[table]:
            print(f"  {row['self_device_ms_per_frame']:9.4f} dev  {row['self_cpu_ms_per_frame']:9.4f} cpu  "
                  f"x{row['calls_per_frame']:<6g} {row['name']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m game.bench kernels", description=__doc__.splitlines()[0],
                                 formatter_class=cli.HelpFormatter)
    ap.add_argument("--preset", default="gpu", choices=sorted(PRESETS), help="generator preset (sizes)")
    ap.add_argument("--res", default="1024x512", help="WIDTHxHEIGHT")
    ap.add_argument("--device", type=cli.device, default=None,
                    help="cpu, cuda or cuda:N (default: cuda when present)")
    ap.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "bf16"], help="precision to ask for")
    ap.add_argument("--compile", nargs="?", const=True, default=False, metavar="MODE",
                    help="torch.compile (default mode: reduce-overhead on cuda), or name a mode")
    ap.add_argument("--frames", type=cli.positive_int, default=20, help="profiled frames")
    ap.add_argument("--top", type=cli.positive_int, default=15, help="operators listed per table")
    args = ap.parse_args(argv)
    # Flag errors now, before the model is built (torch would find a bad --compile mode only at the
    # first render, and a bad --res in a traceback).
    problem = device_and_compile_problem(args.device, args.compile)
    if problem:
        ap.error(problem)
    try:
        PRESETS[args.preset].check_size(*parse_size(args.res))
    except ValueError as exc:
        ap.error(str(exc))
    report = profile_renderer(args.preset, args.res, args.device, args.precision, args.compile, args.frames,
                              top=args.top)
    print_profile(report)
    print_result(report)
    return 0
