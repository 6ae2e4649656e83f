"""Latency profiling (issue 7, contract 7): per-stage frame timing, report.json, Chrome trace,
latency.png, console table, live HUD figures, backend comparison and the overhead benchmark.

    profiler = Profiler(enabled=args.profile, warmup_frames=10, use_cuda=on_cuda)
    profiler.begin_frame()                     # controls sampled
    with profiler.stage("source"): frame = source.step(control)
    image = timed_render(profiler, renderer, frame)   # Renderer.last_timings -> spans
    with profiler.stage("display"): ...flip...
    profiler.end_frame()                       # frame on screen
    profiler.write_report("reports/run", meta)

Importing this package costs no torch, matplotlib or pygame import.
"""

from game.profiler.compare import compare_backends, comparison_frames, run_comparison
from game.profiler.hooks import add_renderer_timings, add_source_timings, hud_lines, timed_render
from game.profiler.profiler import END_TO_END, STAGES, Profiler
from game.profiler.stats import PERCENTILE_METHOD, percentile, summarize

__all__ = [
    "END_TO_END",
    "PERCENTILE_METHOD",
    "STAGES",
    "Profiler",
    "add_renderer_timings",
    "add_source_timings",
    "compare_backends",
    "comparison_frames",
    "hud_lines",
    "percentile",
    "run_comparison",
    "summarize",
    "timed_render",
]
