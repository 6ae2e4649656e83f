"""The GPU measurement of the generator in one run: every inference path, one JSON file.

    PYTHONPATH=. python -m game.bench suite --preset gpu --out perf.json
    python -m game.bench suite --preset tiny --res 64x32 --frames 5 --out /tmp/p.json  # CPU dry run

Paths, all through `generator.bench_path` in one process so they are compared on the same machine:
torch eager fp32, fp16 and bf16 (channels_last), torch.compile with CUDA graphs ("reduce-overhead")
and with autotuned kernels ("max-autotune"), the Renderer end to end (uint8 labels + float32 flow
on the host -> uint8 frame on the host, history on the device; with pinned and with pageable host
staging buffers), and ONNX Runtime where its CUDA provider exists. Each path records p50/p95/p99/fps,
peak GPU memory, whether torch.compile held (a failed compile runs eager), and end to end the median
time of each Renderer stage. Then `kernels` profiles the product path (the Renderer with CUDA
graphs, fp16) for its top kernels and host operators; max-autotune, the slowest to compile, comes
last. The file is rewritten after every step, so a run cut short by its time limit still leaves
every finished measurement. TensorRT is measured only where the `tensorrt`
package is installed; nothing is estimated.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import traceback
from pathlib import Path

import torch

from carla_bridge.core import cli
from carla_bridge.core.files import file_write_problem
from carla_bridge.core.frames import parse_size
from game.bench.generator import add_preset_flag, bench_path, print_table
from game.bench.kernels import print_profile, profile_renderer
from game.bench.timing import print_result
from game.profiler.machine import machine_info
from neural_render.checkpoint import load_generator
from neural_render.model import PRESETS
from neural_render.runtime.select import available_backends, cuda_device_problem

DEFAULT_PRESET = "gpu"  # the GPU measurement; with --model, the checkpoint's own
# (name, bench_path keyword arguments). Order: cheapest first, so a short budget still covers the basics.
PATHS: list[tuple[str, dict]] = [
    ("torch-eager-fp32", dict(backend="torch", precision="fp32")),
    ("torch-eager-fp16", dict(backend="torch", precision="fp16")),
    ("torch-eager-bf16", dict(backend="torch", precision="bf16")),
    ("torch-compile-cudagraphs-fp16", dict(backend="torch", precision="fp16", compile="reduce-overhead")),
    ("renderer-e2e-cudagraphs-fp16", dict(backend="torch", precision="fp16", compile="reduce-overhead",
                                          end_to_end=True)),
    ("renderer-e2e-cudagraphs-fp16-pageable", dict(backend="torch", precision="fp16", compile="reduce-overhead",
                                                   end_to_end=True, pinned=False)),
    ("renderer-e2e-eager-fp16", dict(backend="torch", precision="fp16", end_to_end=True)),
    ("onnxruntime-fp32", dict(backend="onnxruntime", precision="fp32")),
    ("tensorrt-fp16", dict(backend="tensorrt", precision="fp16")),
    ("torch-compile-max-autotune-fp16", dict(backend="torch", precision="fp16", compile="max-autotune")),
]
# At the second, larger resolution only the paths that can meet its target are worth the time.
LARGE_RES_PATHS = ("torch-eager-fp16", "torch-compile-cudagraphs-fp16", "renderer-e2e-cudagraphs-fp16",
                   "renderer-e2e-cudagraphs-fp16-pageable")
# Run after everything else, the profile included: autotuning benchmarks every convolution's kernel
# choices, minutes on a cold cache, and a device lease cut short there must not lose the targets' rows.
LAST_PATHS = ("torch-compile-max-autotune-fp16",)


def _skip_reason(kwargs: dict, device: str) -> str | None:
    backend = kwargs["backend"]
    if backend not in available_backends(device):
        return f"backend '{backend}' is not available on {device} here"
    if kwargs.get("compile") and device == "cpu" and kwargs["compile"] != "default":
        return "CUDA graphs / autotuning need a CUDA device"
    return None


def run_path(name: str, kwargs: dict, preset: str, res: str, device: str, frames: int, model) -> dict:
    row = {"path": name, "res": res, **{k: v for k, v in kwargs.items() if k != "backend"},
           "backend": kwargs["backend"]}
    reason = _skip_reason(kwargs, device)
    if reason:
        return {**row, "skipped": reason}
    cuda = device.startswith("cuda")
    if cuda:
        _free_earlier_paths()
    t0 = time.perf_counter()
    try:
        result = bench_path(preset=preset, res=res, device=device, frames=frames, model=model, **kwargs)
    except Exception as exc:  # one failing path must not lose the others
        return {**row, "error": f"{type(exc).__name__}: {exc}"[:500],
                "traceback": traceback.format_exc(limit=4)[-1500:]}
    result.update(path=name, wall_s=round(time.perf_counter() - t0, 1))
    if cuda:
        result["peak_gpu_mem_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def _free_earlier_paths() -> None:
    """Free what earlier paths hold on the GPU, so that a row's peak memory is its own. A compiled path's
    CUDA-graph tree keeps a private memory pool alive after its row, and the next compiled path would run
    in it, reporting a peak (39 MiB for an end-to-end path on an H200) that leaves out the pool it reuses."""
    torch._dynamo.reset()  # drops compiled code and the CUDA-graph trees with their pools
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def run_profile(preset: str, res: str, device: str) -> dict:
    """The product path under torch.profiler: CUDA graphs + fp16 on the GPU, plain fp32 on the CPU."""
    cuda = device.startswith("cuda")
    try:
        return profile_renderer(preset, res, device, precision="fp16" if cuda else "fp32",
                                compile="reduce-overhead" if cuda else False)
    except Exception as exc:  # the timed figures above are already saved; report, do not crash
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m game.bench suite", description=__doc__,
                                 formatter_class=cli.HelpFormatter)
    add_preset_flag(ap, DEFAULT_PRESET)
    ap.add_argument("--res", nargs="+", default=["1024x512", "2048x1024"], help="first: every path; rest: the fast ones")
    ap.add_argument("--device", type=cli.device, default=None, help="default: cuda when present, else cpu")
    ap.add_argument("--frames", type=cli.positive_int, default=300, help="timed frames per path")
    ap.add_argument("--model", default=None, help="weights (default: random init of --preset; speed does not depend on weights)")
    ap.add_argument("--budget-s", type=cli.non_negative_float, default=300.0,
                    help="skip the remaining paths after this many seconds")
    ap.add_argument("--no-profile", dest="profile", action="store_false", help="skip the closing torch.profiler step")
    ap.add_argument("--out", required=True, type=Path, help="the JSON report, rewritten after every path")
    ap.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    args = ap.parse_args(argv)
    problem = _flag_problem(args)
    if problem:  # each would otherwise give an error row for every path, and exit 0
        ap.error(problem)
    if args.out.is_file() and not args.overwrite:  # e.g. models/gpu.perf.json, the published figures
        print(f"error: --out {args.out}: already exists (an earlier report); pass --overwrite to replace it, "
              f"or another path", file=sys.stderr)
        return 2
    problem = file_write_problem(args.out)  # now, not after minutes of measuring (os.access: yes to root)
    if problem:
        print(f"error: --out {args.out}: {problem}; pass another path", file=sys.stderr)
        return 2
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    report = {"suite": "game.bench.suite", "preset": args.preset, "frames": args.frames,
              "device": device, "machine": machine_info(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "results": []}
    start = time.perf_counter()
    first = [(res, name, kw) for i, res in enumerate(args.res) for name, kw in PATHS
             if name not in LAST_PATHS and (i == 0 or name in LARGE_RES_PATHS)]
    last = [(args.res[0], name, kw) for name, kw in PATHS if name in LAST_PATHS]

    def measure(plan: list[tuple[str, str, dict]]) -> None:
        for res, name, kwargs in plan:
            if time.perf_counter() - start > args.budget_s:
                report["results"].append({"path": name, "res": res,
                                          "skipped": f"time budget {args.budget_s:g} s spent"})
                continue
            row = run_path(name, kwargs, args.preset, res, device, args.frames, args.model)
            report["results"].append(row)
            print(json.dumps(row), flush=True)
            args.out.write_text(json.dumps(report, indent=2))  # after every path: a cut-off run keeps its figures

    measure(first)
    if args.profile and time.perf_counter() - start <= args.budget_s:
        report["profile"] = run_profile(args.preset, args.res[0], device)
        if "error" not in report["profile"]:
            print_profile(report["profile"])
        args.out.write_text(json.dumps(report, indent=2))
    measure(last)
    report["wall_s"] = round(time.perf_counter() - start, 1)
    args.out.write_text(json.dumps(report, indent=2))
    measured = [r for r in report["results"] if "fps" in r]
    if measured:
        print_table(measured)
    print_result({"out": str(args.out), "measured": len(measured), "paths": len(report["results"])})
    failed = [r for r in report["results"] if "error" in r]
    if failed and not measured:  # every path that ran failed: not a report to publish
        print(f"error: no path could be measured; the first failure: {failed[0]['error']}", file=sys.stderr)
        return 1
    return 0


def _flag_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the flags, found before any measuring; resolves args.preset from --model (a
    --model without --preset must not meet the 'gpu' default and fail on every path)."""
    problem = cuda_device_problem(args.device)
    if problem:
        return f"--device {args.device}: {problem}"
    try:
        if args.model:
            args.preset = load_generator(args.model, preset=args.preset).config.name
        args.preset = args.preset or DEFAULT_PRESET
        for res in args.res:
            PRESETS[args.preset].check_size(*parse_size(res))
    except ValueError as exc:  # CheckpointError included
        return str(exc)
    return None

