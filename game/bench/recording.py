"""Recording overhead benchmark: median frame time of a headless loop with and without a SessionRecorder.

    python -m game.bench recording --res 512x256 --frames 200

Each frame is the headless drive minus the window: source step (the procedural world, or with
--source synthetic synthetic frames plus a fixed numpy workload of --workload-ms), the neural Renderer
(--renderer auto: the shipped model, else the cpu preset with random weights, which costs the same;
--renderer none: a colorize stand-in of a few ms, the worst case for the relative overhead), and, in
the recording blocks, SessionRecorder.add, handing the frame to the session's writer thread. Each
block's recorder is built before its frames, so its start-up (the writer thread, ffmpeg), reported as
ready_s, is not in the frame times.
Blocks alternate (base, record, base, record...) from the same seed so both see the same frames and
share the machine's background load; the headline overhead_pct is the median over block pairs of
median(record) / median(base) - 1. CPU ms per frame (this process + writer process + ffmpeg) is the
load-independent cost.
--record-format mcap records MCAP files instead (carla_bridge/session/mcap_writer.py); both runs a
folder block and an MCAP block after each base block and prints the two side by side.
The last line is JSON.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm import tqdm

from carla_bridge.core import cli
from carla_bridge.core.files import folder_write_problem
from carla_bridge.core.frames import CAMERA_SIDES, Control, parse_size
from carla_bridge.procedural import ProceduralWorld, WorldConfig
from carla_bridge.session.recorder import SessionRecorder
from game.bench.timing import print_result
from game.bench.workloads import FixedWorkload, StandInRenderer, SyntheticSource
from game.profiler.stats import percentile
from neural_render import runtime
from neural_render.checkpoint import DEFAULT_MODEL_PATH
from neural_render.model import PRESETS, Vid2VidGenerator
from neural_render.runtime import Renderer


def make_source(kind: str, size: tuple[int, int], seed: int):
    """The procedural world (auto, procedural) or the synthetic source."""
    if kind == "synthetic":
        return SyntheticSource(size, seed=seed), "synthetic"
    # threads=1 as the game runs it (game/startup/sources.py): a numba pool on both cores would make
    # the "cheap" loop a 2-core workload that any recording work must take CPU from.
    return ProceduralWorld(WorldConfig(width=size[0], height=size[1], seed=seed, threads=1)), "procedural"


def make_renderer(kind: str, backend: str, size: tuple[int, int]):
    """The neural Renderer (shipped model, else the preset with random weights: same cost), or the
    stand-in (--renderer none)."""
    if kind == "none":
        return StandInRenderer(), "stand-in"
    if Path(kind).suffix == ".safetensors":
        model = kind
    elif kind == "auto" and Path(DEFAULT_MODEL_PATH).is_file():
        model = DEFAULT_MODEL_PATH
    else:
        torch.manual_seed(0)
        model = Vid2VidGenerator(PRESETS["cpu" if kind == "auto" else kind])
    renderer = Renderer(model, backend=backend, size=size)
    return renderer, f"{renderer.model_name}/{renderer.backend_name}/{renderer.device_name}"


def run_once(source, workload: FixedWorkload, frames: int, seed: int, recorder: SessionRecorder | None,
             bar: tqdm, renderer, add_times: list[float] | None = None) -> list[float]:
    """Frame times in ms; with a recorder, the time of each add() (what the drive pays) goes to add_times."""
    times = []
    control = Control(autopilot=True)
    frame = source.reset(seed=seed)
    renderer.reset()
    for _ in range(frames):
        start = time.perf_counter_ns()
        frame = source.step(control)
        workload()
        t_source = time.perf_counter_ns()
        rendered = renderer.render(frame)
        t_render = time.perf_counter_ns()
        if recorder is not None:
            recorder.add(frame, control, rendered,
                         {"source": (t_source - start) / 1e6, "render": (t_render - t_source) / 1e6})
            if add_times is not None:
                add_times.append((time.perf_counter_ns() - t_render) / 1e6)
        times.append((time.perf_counter_ns() - start) / 1e6)
        bar.update()
    return times


def main(argv: list[str] | None = None) -> int:
    # As launch.py does before torch or numba is imported: spinning OpenMP threads starve the rest.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = argparse.ArgumentParser(prog="python -m game.bench recording", description=__doc__.split("\n\n")[0])
    parser.add_argument("--res", default="512x256", help="WIDTHxHEIGHT (default 512x256)")
    parser.add_argument("--frames", type=int, default=200, help="frames per condition (default 200)")
    parser.add_argument("--blocks", type=int, default=5,
                        help="alternating base/record block pairs the frames are split into (default 5)")
    parser.add_argument("--source", choices=("auto", "procedural", "synthetic"), default="auto")
    parser.add_argument("--workload-ms", type=float, default=None,
                        help="fixed numpy work per frame (default: 20 with the synthetic source, else 0)")
    parser.add_argument("--renderer", default="auto",
                        help="auto (the shipped model, else the cpu preset), none (a colorize stand-in), "
                             "a preset name, or a .safetensors path")
    parser.add_argument("--backend", default="auto", choices=("auto", *runtime.BACKENDS),
                        help="Renderer backend (default auto)")
    parser.add_argument("--record-rgb", action="store_true", help="also write lossless rgb PNGs")
    parser.add_argument("--no-video", action="store_true", help="no render.mp4 / engine.mp4")
    parser.add_argument("--record-format", choices=("folder", "mcap", "both"), default="folder",
                        help="what the record blocks write (default folder); both: a block of each per base block")
    parser.add_argument("--out", type=Path, default=None, help="keep the sessions here (default: temp)")
    parser.add_argument("--seed", type=cli.non_negative_int, default=0)
    args = parser.parse_args(argv)
    if args.blocks < 1 or args.frames < args.blocks:
        parser.error(f"--frames ({args.frames}) must be at least --blocks ({args.blocks}), and --blocks at least 1")
    # Flags are checked before any frame: an --out that can hold no session would otherwise print the
    # overhead figures of a loop that recorded nothing.
    try:
        size = parse_size(args.res, sides=CAMERA_SIDES)
    except ValueError as exc:
        parser.error(str(exc))
    _check_renderer_flag(parser, args.renderer)
    if args.out is not None:
        problem = folder_write_problem(args.out)
        held = [f"block{b}{suffix}" for b in range(args.blocks) for suffix in ("", ".mcap")
                if (args.out / f"block{b}{suffix}").exists()]
        if problem:
            parser.error(f"--out {args.out}: {problem}; pass another folder")
        if held:
            parser.error(f"--out {args.out}: already holds {held[0]} of an earlier run (sessions are never "
                         f"overwritten); pass another folder")
    source, kind = make_source(args.source, size, args.seed)
    workload = FixedWorkload(args.workload_ms if args.workload_ms is not None
                             else (20.0 if kind == "synthetic" else 0.0))
    try:
        renderer, render_kind = make_renderer(args.renderer, args.backend, size)
    except (ValueError, ImportError) as exc:  # a bad checkpoint, a size the preset cannot take, no TensorRT
        source.close()
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    root = args.out or Path(tempfile.mkdtemp(prefix="session-bench-"))
    formats = ("folder", "mcap") if args.record_format == "both" else (args.record_format,)
    per_block = max(1, args.frames // args.blocks)
    base: list[float] = []
    cpu_base = 0.0
    runs = {name: {"times": [], "ratios": [], "add_ms": [], "cpu_s": 0.0, "frames_written": 0,
                   "video_frames_dropped": 0, "ready_s": [], "close_s": [], "errors": []} for name in formats}
    with source, tqdm(total=(1 + len(formats)) * args.blocks * per_block + 10, desc="bench", unit="frame") as bar:
        run_once(source, workload, 10, args.seed, None, bar, renderer)  # warm-up (numba, caches)
        for block in range(args.blocks):
            cpu_start = _cpu_s()
            times_base = run_once(source, workload, per_block, args.seed, None, bar, renderer)
            cpu_base += _cpu_s() - cpu_start
            base += times_base
            for name, run in runs.items():
                cpu_start = _cpu_s()
                start = time.perf_counter()  # steady state is measured; the recorder's start-up apart
                recorder = SessionRecorder(
                    root / f"block{block}{'.mcap' if name == 'mcap' else ''}",
                    {"source": kind, "seed": args.seed, "bench": True}, size=size,
                    record_rgb=args.record_rgb, video=not args.no_video, record_format=name,
                )
                run["ready_s"].append(round(time.perf_counter() - start, 3))
                times_rec = run_once(source, workload, per_block, args.seed, recorder, bar, renderer, run["add_ms"])
                start = time.perf_counter()
                recorder.close()  # drains the queue, ends the writer and reaps ffmpeg: their CPU time counts below
                run["close_s"].append(round(time.perf_counter() - start, 3))
                run["cpu_s"] += _cpu_s() - cpu_start
                run["frames_written"] += recorder.frames_written
                run["video_frames_dropped"] += recorder.video_frames_dropped
                if recorder.error:
                    run["errors"].append(recorder.error)
                run["times"] += times_rec
                run["ratios"].append(statistics.median(times_rec) / statistics.median(times_base))
    if args.out is None:
        shutil.rmtree(root, ignore_errors=True)
    errors = [error for run in runs.values() for error in run["errors"]]
    if errors:  # the record blocks stopped recording: their times would credit a recorder that did nothing
        print(f"error: the recording failed, so there is no overhead to report: {errors[0]}", file=sys.stderr)
        raise SystemExit(1)
    median_base = statistics.median(base)
    frames = args.blocks * per_block
    summaries = {name: _summary(run, median_base, frames) for name, run in runs.items()}
    result = {
        "res": f"{size[0]}x{size[1]}", "frames": frames, "blocks": args.blocks, "source": kind,
        "renderer": render_kind, "writer": "thread", "workload_ms": args.workload_ms,
        "record_rgb": args.record_rgb,
        "video": not args.no_video, "record_format": args.record_format,
        "median_ms_base": round(median_base, 3),
        "p95_ms_base": round(percentile(base, 95), 3),
        "cpu_ms_per_frame_base": round(1000 * cpu_base / frames, 3),
        **summaries[formats[0]],  # the first format's figures under the keys they always had
        **({"by_format": summaries} if len(formats) > 1 else {}),
    }
    for name, summary in summaries.items():
        writers = "process + writer + ffmpeg" if name == "folder" and not args.no_video else "process + writer"
        print(f"{name}: median frame {median_base:.2f} ms without recording, {summary['median_ms_record']:.2f} ms "
              f"with (thread writer, {render_kind} renderer); paired "
              f"overhead {summary['overhead_pct']:+.1f} %; CPU per frame {result['cpu_ms_per_frame_base']:.2f} -> "
              f"{summary['cpu_ms_per_frame_record']:.2f} ms ({writers}); add() "
              f"{summary['add_ms_median']:.2f} ms median")
    print_result(result)
    return 0


def _summary(run: dict, median_base: float, frames: int) -> dict:
    """One record format's figures against the base blocks."""
    median_rec = statistics.median(run["times"])
    return {
        "median_ms_record": round(median_rec, 3),
        "p95_ms_record": round(percentile(run["times"], 95), 3),
        "overhead_pct_pooled": round(100.0 * (median_rec - median_base) / median_base, 2),
        # Paired estimate: each record block against the base block just before it, so slow drifts of
        # the machine's background load cancel; the headline figure.
        "overhead_pct": round(100.0 * (statistics.median(run["ratios"]) - 1.0), 2),
        # The drive's own cost of SessionRecorder.add (copies, hand-over); GIL contention with a writer
        # thread is not in it but in median_ms_record.
        "add_ms_median": round(statistics.median(run["add_ms"]), 3),
        "add_ms_p95": round(percentile(run["add_ms"], 95), 3),
        "cpu_ms_per_frame_record": round(1000 * run["cpu_s"] / frames, 3),
        **{key: run[key] for key in ("frames_written", "video_frames_dropped", "ready_s", "close_s", "errors")},
    }


def _check_renderer_flag(parser: argparse.ArgumentParser, renderer: str) -> None:
    if Path(renderer).suffix == ".safetensors" and not Path(renderer).is_file():  # checkpoint's hint names --model
        parser.error(f"argument --renderer: {renderer}: no such file; pass an existing .safetensors, or auto")
    if renderer in ("auto", "none") or Path(renderer).suffix == ".safetensors":
        return
    if renderer not in PRESETS:
        parser.error(f"argument --renderer: {renderer!r} is none of auto, none, {', '.join(PRESETS)}, "
                     "or a .safetensors path")


def _cpu_s() -> float:
    """CPU seconds of this process (all threads) and of its reaped children (writer process, ffmpeg)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system

