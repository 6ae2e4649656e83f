"""Recording overhead benchmark: median frame time of a headless loop with and without a SessionRecorder.

    python -m carla_bridge.session.bench --res 512x256 --frames 200

Each frame is the headless drive minus the window: source step (the procedural world when it is
installed, else synthetic frames plus a fixed numpy workload of --workload-ms), a stand-in render
(colorize + blend with the previous output, a few ms; the neural renderer itself would only make the
frame longer and the relative overhead smaller), and, in the recording runs, SessionRecorder.add.
Runs alternate (base, record, base, record...) from the same seed so both see the same frames and
share the machine's background load; medians pool the runs. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from carla_bridge.frames import Control, SceneFrame, parse_resolution
from carla_bridge.labels import colorize
from carla_bridge.session.recorder import SessionRecorder
from carla_bridge.session.synthetic import SyntheticSource


def make_source(kind: str, size: tuple[int, int], seed: int):
    """The procedural world when present (and asked for), else the synthetic source."""
    if kind in ("auto", "procedural"):
        try:
            from carla_bridge.procedural import ProceduralWorld, WorldConfig

            return ProceduralWorld(WorldConfig(width=size[0], height=size[1], seed=seed)), "procedural"
        except ImportError as exc:
            if kind == "procedural":
                raise SystemExit(f"the procedural world is not available: {exc}") from None
    return SyntheticSource(size, seed=seed), "synthetic"


class FixedWorkload:
    """A fixed amount of numpy work per frame (matrix products), calibrated once to about ``ms``."""

    def __init__(self, ms: float) -> None:
        self.a = np.random.default_rng(0).random((192, 192), dtype=np.float32)
        start = time.perf_counter()
        for _ in range(20):
            self.a @ self.a
        per_op = (time.perf_counter() - start) / 20
        self.ops = max(0, round(ms / 1000 / per_op)) if ms > 0 else 0

    def __call__(self) -> None:
        for _ in range(self.ops):
            self.a @ self.a


def stand_in_render(frame: SceneFrame, previous: np.ndarray | None) -> np.ndarray:
    """Colorize and blend with the previous output, the cost shape of a cheap temporal renderer."""
    image = colorize(frame.labels).astype(np.float32)
    if previous is not None and not frame.cut:
        image = 0.7 * image + 0.3 * previous
    return image.astype(np.uint8)


def run_once(source, workload: FixedWorkload, frames: int, seed: int, recorder: SessionRecorder | None,
             bar: tqdm) -> list[float]:
    times = []
    control = Control(autopilot=True)
    frame = source.reset(seed=seed)
    rendered = None
    for _ in range(frames):
        start = time.perf_counter_ns()
        frame = source.step(control)
        workload()
        t_source = time.perf_counter_ns()
        rendered = stand_in_render(frame, rendered)
        t_render = time.perf_counter_ns()
        if recorder is not None:
            recorder.add(frame, control, rendered,
                         {"source": (t_source - start) / 1e6, "render": (t_render - t_source) / 1e6})
        times.append((time.perf_counter_ns() - start) / 1e6)
        bar.update()
    return times


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--res", default="512x256", help="WIDTHxHEIGHT (default 512x256)")
    parser.add_argument("--frames", type=int, default=200, help="frames per run (default 200)")
    parser.add_argument("--repeats", type=int, default=2, help="base/record run pairs (default 2)")
    parser.add_argument("--source", choices=("auto", "procedural", "synthetic"), default="auto")
    parser.add_argument("--workload-ms", type=float, default=None,
                        help="fixed numpy work per frame (default: 20 with the synthetic source, else 0)")
    parser.add_argument("--record-rgb", action="store_true", help="also write lossless rgb PNGs")
    parser.add_argument("--no-video", action="store_true", help="no render.mp4 / engine.mp4")
    parser.add_argument("--out", type=Path, default=None, help="keep the sessions here (default: temp)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    size = parse_resolution(args.res)
    source, kind = make_source(args.source, size, args.seed)
    workload = FixedWorkload(args.workload_ms if args.workload_ms is not None
                             else (20.0 if kind == "synthetic" else 0.0))
    root = args.out or Path(tempfile.mkdtemp(prefix="session-bench-"))
    base: list[float] = []
    rec: list[float] = []
    stats = {"frames_written": 0, "video_frames_dropped": 0, "close_s": []}
    errors = []
    with source, tqdm(total=2 * args.repeats * args.frames, desc="bench", unit="frame") as bar:
        run_once(source, workload, 10, args.seed, None, bar)  # warm-up (numba, caches)
        for repeat in range(args.repeats):
            base += run_once(source, workload, args.frames, args.seed, None, bar)
            recorder = SessionRecorder(
                root / f"run{repeat}", {"source": kind, "seed": args.seed, "bench": True}, size=size,
                record_rgb=args.record_rgb, video=not args.no_video,
            )
            rec += run_once(source, workload, args.frames, args.seed, recorder, bar)
            start = time.perf_counter()
            recorder.close()
            stats["close_s"].append(round(time.perf_counter() - start, 3))
            stats["frames_written"] += recorder.frames_written
            stats["video_frames_dropped"] += recorder.video_frames_dropped
            if recorder.error:
                errors.append(recorder.error)
    if args.out is None:
        shutil.rmtree(root, ignore_errors=True)
    median_base, median_rec = statistics.median(base), statistics.median(rec)
    result = {
        "res": f"{size[0]}x{size[1]}", "frames": args.frames, "repeats": args.repeats, "source": kind,
        "workload_ms": args.workload_ms, "record_rgb": args.record_rgb, "video": not args.no_video,
        "median_ms_base": round(median_base, 3), "median_ms_record": round(median_rec, 3),
        "p95_ms_base": round(float(np.percentile(base, 95)), 3),
        "p95_ms_record": round(float(np.percentile(rec, 95)), 3),
        "overhead_pct": round(100.0 * (median_rec - median_base) / median_base, 2),
        **stats, "errors": errors,
    }
    print(f"median frame {median_base:.2f} ms without recording, {median_rec:.2f} ms with "
          f"({result['overhead_pct']:+.1f} %); p95 {result['p95_ms_base']:.2f} / {result['p95_ms_record']:.2f} ms")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
