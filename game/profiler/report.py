"""Builds report.json from a Profiler and writes the report directory (report.json, trace.json,
latency.png) and the console table.

report.json (schema "neural-drive/profile-report/1"), times in milliseconds:
  frames: {recorded (completed frames), warmup_skipped, measured}; unfinished_frames (begun, never
  ended: not in any figure); run: {frames_requested, ended_by, cut_short} (from meta); fps (measured
  frames / wall time from the first measured begin_frame to the last measured end_frame); fps_from_p50 (1000 / end-to-end p50);
  stages: {stage: summary}; end_to_end: summary; device_ms: {stage: summary} (CUDA events, when
  profiled on CUDA, on every device_sampled_every_n_frames-th frame); summary = {count, mean, stdev, min, p50, p90, p95, p99, max} (stats.py);
  backend, device, precision, model, resolution, source (copied from meta); meta (all of it);
  machine (machine.py); percentile_method; files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from game.profiler.columns import per_frame_sums, span_columns
from game.profiler.files import write_text_safely
from game.profiler.machine import machine_info
from game.profiler.plot import plot_latency
from game.profiler.profiler import END_TO_END, Profiler
from game.profiler.stats import PERCENTILE_METHOD, STDEV_METHOD, summarize
from game.profiler.table import stage_table
from game.profiler.trace import write_trace

SCHEMA = "neural-drive/profile-report/1"
META_FIELDS = ("backend", "device", "precision", "model", "resolution", "source")
REPORT_FILE, TRACE_FILE, PLOT_FILE = "report.json", "trace.json", "latency.png"


def _resolution_text(value: Any) -> Any:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return f"{int(value[0])}x{int(value[1])}"
    return value


def run_status(completed: int, meta: dict[str, Any] | None) -> dict[str, Any]:
    """Whether the run measured all it was asked to. The caller says what was asked and what ended it
    (meta "frames_requested": --frames or None, "ended_by": e.g. "SIGTERM" or None). Ctrl+C ending an
    open-ended drive is its normal end; a run that stops before its --frames is cut short."""
    meta = meta or {}
    requested = meta.get("frames_requested")
    return {"frames_requested": requested, "ended_by": meta.get("ended_by"),
            "cut_short": requested is not None and completed < requested}


def collect(profiler: Profiler) -> dict[str, Any]:
    """Per-frame numbers of the measured (post warm-up, completed) frames, as numpy arrays aligned
    with "frames": e2e_ms[i] is frame frames[i]'s end-to-end time; stage_ms / device_ms map a stage
    to ms per measured frame, NaN where the stage did not run in that frame. Arrays, not per-frame
    dicts: a long run has millions of (frame, stage) figures (see columns.py)."""
    frames = np.asarray(profiler.measured_frames(), dtype=np.int64)
    all_stage_ms = per_frame_sums(span_columns(profiler.spans), profiler.frames_begun)
    stage_ms = {name: all_stage_ms[name][frames] for name in profiler.stage_names()}
    begin = np.asarray(profiler.frame_begin_ns, dtype=np.int64)[frames]
    end = np.fromiter((profiler.frame_end_ns[f] for f in frames.tolist()), dtype=np.int64, count=len(frames))
    e2e_ms = (end - begin) / 1e6
    device = {name: _aligned(per, frames) for name, per in profiler.device_stage_ms().items()}
    return {"frames": frames, "stage_ms": stage_ms, "e2e_ms": e2e_ms, "device_ms": device,
            "end_to_end_name": END_TO_END}


def _aligned(per_frame: dict[int, float], frames: np.ndarray) -> np.ndarray:
    """{frame: ms} as an array over frames, NaN for frames missing from the dict."""
    return np.array([per_frame.get(f, np.nan) for f in frames.tolist()], dtype=np.float64)


def _present(values: np.ndarray) -> np.ndarray:
    """The figures of the frames a stage ran in (collect marks the others NaN)."""
    return values[~np.isnan(values)]


def build_report(profiler: Profiler, meta: dict[str, Any], data: dict[str, Any] | None = None) -> dict[str, Any]:
    data = data if data is not None else collect(profiler)
    frames = data["frames"]
    end_to_end = summarize(data["e2e_ms"])
    fps = None
    if len(frames) >= 2:
        wall_ns = profiler.frame_end_ns[int(frames[-1])] - profiler.frame_begin_ns[int(frames[0])]
        fps = round(len(frames) / (wall_ns / 1e9), 3) if wall_ns > 0 else None
    elif len(frames) and end_to_end["mean"]:
        fps = round(1000.0 / end_to_end["mean"], 3)
    meta = dict(meta or {})
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "unit": "ms",
        "frames": {  # recorded = warmup_skipped + measured: completed frames only
            "recorded": profiler.frames_completed,
            "warmup_skipped": profiler.warmup_skipped,
            "measured": len(frames),
        },
        "unfinished_frames": profiler.frames_unfinished,
        "run": run_status(profiler.frames_completed, meta),
        "fps": fps,
        "fps_from_p50": round(1000.0 / end_to_end["p50"], 3) if end_to_end["p50"] else None,
        "end_to_end_name": data["end_to_end_name"],
        "end_to_end": end_to_end,
        "stages": {name: summarize(_present(per)) for name, per in data["stage_ms"].items()},
        "device_ms": {name: summarize(_present(per)) for name, per in data["device_ms"].items()},
        "percentile_method": PERCENTILE_METHOD,
        "stdev_method": STDEV_METHOD,
        "cuda_device": profiler.cuda_device_name,
        "device_sampled_every_n_frames": profiler.cuda_every if profiler.cuda_device_name else None,
        "machine": machine_info(),
        "meta": meta,
        "files": {"report": REPORT_FILE, "trace": TRACE_FILE, "plot": PLOT_FILE},
    }
    for key in META_FIELDS:
        report[key] = _resolution_text(meta.get(key))
    return report


def write_report(profiler: Profiler, directory: str | Path, meta: dict[str, Any], quiet: bool = False) -> dict[str, Any]:
    """Write the three files into directory (created if needed), print the table, return the report.
    A disabled profiler writes nothing and returns {}."""
    if not profiler.enabled:
        return {}
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"report directory {str(directory)!r} cannot be created ({error}); "
                         "pass a writable --report DIR") from error
    data = collect(profiler)
    report = build_report(profiler, meta, data)
    write_text_safely(directory / REPORT_FILE, json.dumps(report, indent=2, default=str) + "\n")
    write_trace(profiler, directory / TRACE_FILE, {k: report[k] for k in META_FIELDS})
    title = (f"{report.get('model')}: {report.get('backend')} / {report.get('device')} / {report.get('resolution')}: "
             f"{len(data['frames'])} frames, {report['frames']['warmup_skipped']} warm-up skipped")
    plot_latency(data["frames"], data["stage_ms"], data["e2e_ms"], directory / PLOT_FILE, title)
    if not quiet:
        print(stage_table(report))
        print(f"profile report written to {directory}/ ({REPORT_FILE}, {TRACE_FILE}, {PLOT_FILE})")
    return report
