"""The small glue the game loop calls: time a Renderer call and format the HUD lines, so the loop
needs these few names and none of the Profiler's internals."""

from __future__ import annotations

from typing import Any

from game.profiler.profiler import END_TO_END, RENDERER_STAGES, STAGES, Profiler

RENDER_STAGE = "render"  # the whole Renderer.render call; its parts come from last_timings


def add_renderer_timings(profiler: Profiler, renderer: Any) -> None:
    """Add the spans of the Renderer's last call (Renderer.last_timings = {stage: (start, end)})."""
    if not profiler.enabled:
        return
    timings = renderer.last_timings
    for name in RENDERER_STAGES:
        span = timings.get(name)
        if span is not None:
            profiler.add_span(name, span[0], span[1])
    for name, span in timings.items():  # any extra stage a backend reports
        if name not in RENDERER_STAGES and span is not None:
            profiler.add_span(name, span[0], span[1])


def add_source_timings(profiler: Profiler, source: Any) -> None:
    """Sub-spans of the last source.step, when the source reports them the way the Renderer does
    (duck-typed `last_timings = {"tick": (start, end), "sensor_wait": (start, end)}`), as
    "source.tick" / "source.sensor_wait", nested inside the loop's "source" span."""
    if not profiler.enabled:
        return
    for name, span in (getattr(source, "last_timings", None) or {}).items():
        if span is not None:
            profiler.add_span(f"source.{name}", span[0], span[1])


def timed_render(profiler: Profiler, renderer: Any, frame: Any) -> Any:
    """renderer.render(frame) inside a "render" stage (host time, CUDA events, NVTX range), then the
    renderer's own preprocess/upload/inference/download spans nested inside it."""
    if not profiler.enabled:
        return renderer.render(frame)
    with profiler.stage(RENDER_STAGE):
        image = renderer.render(frame)
    add_renderer_timings(profiler, renderer)
    return image


def hud_lines(profiler: Profiler, stages: tuple[str, ...] | None = None) -> list[str]:
    """'stage  p50 / p95 ms' lines for the HUD, end to end first then the pipeline stages."""
    stats = profiler.live_stats()
    if not stats:
        return []
    key = (profiler.live_version, stages)
    cached = profiler.hud_cache
    if cached is not None and cached[0] == key:
        return cached[1]  # figures refresh a few times per second; formatting follows them
    order = stages or (END_TO_END, *STAGES)
    names = [n for n in order if n in stats] + ([] if stages else
                                                 [n for n in stats if n not in order and n != RENDER_STAGE])
    lines = [f"{name:<11}{stats[name][0]:6.1f} /{stats[name][1]:6.1f} ms" for name in names]
    profiler.hud_cache = (key, lines)
    return lines
