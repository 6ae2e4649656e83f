"""One tick of the game: read the keys, advance the source, render, show, record.

Sequential mode (default), per tick t:  controls -> source.step -> render(frame t) -> display -> record.
Threaded mode (--threaded): the source step for tick t+1 runs in a worker thread while the main thread
renders and shows frame t, so a tick costs max(source, render + display) instead of their sum, for
one tick more control latency. PyTorch and numpy release the GIL in their kernels, so the two really
overlap. Source calls made by keys (respawn, weather) happen only between ticks, when no step is in
flight.

Every stage is timed with perf_counter_ns: the milliseconds feed the HUD and the recorder, and the
spans go to the profiler (contract 7; a disabled profiler drops them at no cost).
"""

from __future__ import annotations

import time
from time import perf_counter_ns

import pygame

from game.app.actions import apply_action
from game.view.layout import draw_panes, free_cell
from game.app.status import banner_text, hud_lines, recording_text

RENDERER_STAGES = ("preprocess", "upload", "inference", "download")
# A headless drive waits for the session writer when this many ticks are queued and not yet on disk.
HEADLESS_BACKLOG_FRAMES = 16
# Paced drives drop a lag behind the wall clock above this instead of catching up in fast-forward.
MAX_PACE_LAG_S = 0.1


class StageTimes:
    """Milliseconds per stage of one tick (HUD, recorder) and the same spans for the profiler."""

    def __init__(self, profiler) -> None:
        self.profiler = profiler
        self.ms: dict[str, float] = {}

    def add(self, name: str, start_ns: int, end_ns: int) -> None:
        self.ms[name] = self.ms.get(name, 0.0) + (end_ns - start_ns) / 1e6
        self.profiler.add_span(name, start_ns, end_ns)


def _timed_step(source, control, times: StageTimes):
    start = perf_counter_ns()
    frame = source.step(control)
    times.add("source", start, perf_counter_ns())
    # Sub-spans a source reports like the Renderer does (CARLA: tick, sensor wait), for the profiler.
    for name, span in (getattr(source, "last_timings", None) or {}).items():
        if span is not None:
            times.profiler.add_span(f"source.{name}", span[0], span[1])
    return frame


def tick(app) -> bool:
    """Run one frame; False when the app should stop (quit key, window closed, --frames reached,
    replay finished, a headless run's recording failed)."""
    if app.headless and app.recording_error:  # no one sees the notice: the run was started to record
        return False
    app.profiler.begin_frame()
    times = StageTimes(app.profiler)
    milliseconds = app.clock.tick()  # no frame cap: never wait here (pacing is below, on sim time)
    for action in app.keyboard.parse_events(pygame.event.get(), milliseconds):
        if not apply_action(app, action):
            return False
    control = app.keyboard.control()

    future = None
    try:
        if app.pool is not None:  # show the frame stepped last tick; step the next one meanwhile
            frame = app.pending
            future = app.pool.submit(_timed_step, app.source, control, times)
        elif app.pending is not None:  # the first frame (reset) or a respawn: show it instead of stepping
            frame = app.pending
        else:
            frame = _timed_step(app.source, control, times)
    except app.end_errors as end:  # the replay ran out of frames: a normal end
        return _finished(end)
    app.pending = None

    rendered = _render(app, frame, times)
    if app.draw:
        _display(app, frame, rendered, times)
    app.profiler.end_frame()
    _record(app, frame, rendered, times)
    app.frame, app.rendered, app.timings = frame, rendered, times.ms
    app.ticks += 1
    app.stats.add(frame)
    app.hud.tick(milliseconds / 1000.0)

    if future is not None:
        try:
            app.pending = future.result()
        except app.end_errors as end:
            return _finished(end)
    if not app.headless:
        _pace(app, frame)
    return app.config.frames is None or app.ticks < app.config.frames


def _finished(end: BaseException) -> bool:
    print(f"replay finished: {end}")
    return False


def _render(app, frame, times: StageTimes):
    renderer = app.renderer
    start = perf_counter_ns()
    try:
        # A torch.compile'd renderer's first frame compiles the generator (19 s for the cpu preset on a
        # 2-core CPU): a stop signal meanwhile ends the drive at once (game.app.signals.catch_stop_signals)
        # instead of after it. Set inside the try, so that no signal can leave it set. TensorRT's first
        # frame captures a CUDA graph instead: quick, and not known to be safe to cut, so not included.
        app.compiling = renderer.backend_name == "torch" and renderer.compiled and renderer.frames_rendered == 0
        with app.profiler.device_range("render"):  # CUDA events + NVTX when profiling on a GPU
            rendered = renderer.render(frame)
    finally:
        app.compiling = False
    times.add("render", start, perf_counter_ns())
    for name, span in (getattr(app.renderer, "last_timings", None) or {}).items():
        if span is not None:
            times.add(name, span[0], span[1])
    return rendered


def _display(app, frame, rendered, times: StageTimes) -> None:
    from carla_bridge.core.labels import colorize

    start = perf_counter_ns()
    images = {"labels": colorize(frame.labels), "render": rendered}
    if frame.rgb is not None:
        images["engine"] = frame.rgb
    app.rects = draw_panes(app.surface, app.layout, images)
    spare = free_cell(app.layout, app.surface.get_size(), app.size, len(images))
    app.hud.draw(app.surface, hud_lines(app, frame), banner_text(app), recording_text(app),
                 origin=spare[:2] if spare else (0, 0))
    pygame.display.flip()
    times.add("display", start, perf_counter_ns())


def _record(app, frame, rendered, times: StageTimes) -> None:
    recorder = app.recorder
    if recorder is None:
        return
    start = perf_counter_ns()
    recorder.add(frame, frame.ego.control, rendered, timings=dict(times.ms))
    if app.headless:
        _wait_for_writer(app, recorder)
    times.add("record", start, perf_counter_ns())
    if recorder.error:
        app.recording_error = recorder.error  # the exit status says so (App.run)
        app.hud.notify(f"recording stopped: {recorder.error}", color=(255, 80, 80), seconds=6.0)
        print(f"recording stopped: {recorder.error}")
        recorder.close()
        app.recorder = None


def _wait_for_writer(app, recorder, timeout_s: float = 10.0) -> None:
    """No one watches a headless drive, so it waits for the writer instead of outrunning it. Unpaced,
    `--headless --record` ran 400 ticks/s at 64x32 and the recorder stopped itself after 256 frames
    ("the writer fell 8 MB behind"), losing the rest of the run it was started to record."""
    queued = getattr(recorder, "frames_queued", None)
    if queued is None:
        return
    deadline = time.perf_counter() + timeout_s
    while (queued - recorder.frames_written > HEADLESS_BACKLOG_FRAMES and recorder.error is None
           and not app.stop_requested and time.perf_counter() < deadline):
        time.sleep(0.002)


def _pace(app, frame) -> None:
    """Keep simulated time from running ahead of the wall clock (a fast machine would otherwise drive
    in fast-forward). Sleeps only for the remainder of the tick; never blocks on the display."""
    now = time.perf_counter()
    if app.pace_origin is None or frame.cut:
        app.pace_origin = (now, frame.time_s)
        return
    wall0, sim0 = app.pace_origin
    ahead = (frame.time_s - sim0) - (now - wall0)
    if ahead > 0.5:  # a jump in sim time (replay seek, new episode): re-anchor instead of stalling
        app.pace_origin = (now, frame.time_s)
    elif ahead < -MAX_PACE_LAG_S:
        # Behind the wall clock: a stall (the first inference, a K backend build, a recording start, a
        # window drag) or a machine slower than real time. Catching up ran the ticks unpaced, the drive
        # in fast-forward (QA, 20 Hz procedural world: 0.5 s of sim in 0.05 s of wall, 10x, for 2 s after
        # a 2 s stall; a backend that K has to build can take longer).
        # Drop the lag instead, as a game loop does; the sim goes on at real time from here.
        app.pace_origin = (now, frame.time_s)
    elif ahead > 0:
        time.sleep(ahead)
