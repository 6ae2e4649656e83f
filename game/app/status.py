"""What the HUD says and what a recorded session's metadata says: frame statistics and the text lines
built from the app's state (drawing is game.view.hud's job)."""

from __future__ import annotations

import statistics
import time
from collections import deque

from game.profiler.hooks import hud_lines as profiler_hud_lines
from game.startup.cli import retrain_command
from game.view.layout import LAYOUTS


class FrameStats:
    """Client frame times and the source's tick rate over a short window, plus every frame time for
    the summary printed at exit."""

    def __init__(self, window: int = 60) -> None:
        self.frame_ms: list[float] = []
        self._recent: deque[tuple[float, int, float]] = deque(maxlen=window)  # wall s, tick index, sim s

    def add(self, frame) -> None:
        """Call once per tick after the frame is shown; the frame time is the wall time between calls."""
        now = time.perf_counter()
        if self._recent:
            self.frame_ms.append((now - self._recent[-1][0]) * 1000.0)
        self._recent.append((now, frame.index, frame.time_s))

    def rates(self) -> tuple[float, float, float]:
        """(client FPS, source ticks per second, sim seconds per wall second)."""
        if len(self._recent) < 2:
            return 0.0, 0.0, 0.0
        (w0, i0, s0), (w1, i1, s1) = self._recent[0], self._recent[-1]
        wall = max(w1 - w0, 1e-9)
        return (len(self._recent) - 1) / wall, max(0, i1 - i0) / wall, max(0.0, s1 - s0) / wall

    def summary(self) -> str:
        # The first interval carries start-up work (allocation, first inference); leave it out.
        times = self.frame_ms[1:] or self.frame_ms
        if not times:
            return "fewer than two frames: no frame time"
        median = statistics.median(times)
        p95 = sorted(times)[min(len(times) - 1, int(0.95 * len(times)))]
        return (f"{len(self.frame_ms) + 1} frames, median frame {median:.1f} ms "
                f"({1000.0 / max(median, 1e-9):.1f} FPS), p95 {p95:.1f} ms")


def hud_lines(app, frame) -> list:
    fps, tick_rate, sim_rate = app.stats.rates()
    renderer, times = app.renderer, app.timings
    control = frame.ego.control
    # A replay shows the recorded drive: its autopilot is the frame's, not the (unused) keyboard's
    autopilot = control.autopilot if app.source_name == "replay" else app.keyboard.autopilot
    lines: list = [  # no title line: the window's caption says neural-drive
        f"source    {app.source_name}",
        f"client    {fps:5.1f} FPS",
        f"ticks     {tick_rate:5.1f} /s  (sim {sim_rate:.2f}x)",
        f"mode      {'threaded (+1 tick)' if app.pool is not None else 'sequential'}",
        f"model     {app.model.label}",
        f"backend   {renderer.backend_name} {renderer.device_name} {renderer.precision}"
        f"{' compiled' if renderer.compiled else ''}",
        f"history   {'recurrent' if renderer.history_enabled else 'frame-by-frame'}",
        f"res       {app.size[0]}x{app.size[1]}",
        f"layout    {LAYOUTS[app.layout]}",
        "",
    ]
    for name in ("source", "render", "inference", "display", "record"):
        if name in times:
            lines.append(f"{name:<10}{times[name]:6.1f} ms")
    live = _profiler_lines(app)
    if live:
        lines += ["", "p50 / p95 (profiler)"] + live
    lines += [
        "",
        f"speed     {frame.ego.speed_kmh:5.1f} km/h",
        ("throttle", control.throttle, 0.0, 1.0),
        ("steer", control.steer, -1.0, 1.0),
        ("brake", control.brake, 0.0, 1.0),
        "autopilot " + ("on" if autopilot else "off")
        + ("  R" if control.reverse else "") + ("  handbrake" if control.hand_brake else ""),
    ]
    return lines


def _profiler_lines(app) -> list[str]:
    if not app.config.profile:
        return []
    return profiler_hud_lines(app.profiler)


def banner_text(app) -> str | None:
    model = app.model
    if model.untrained:
        return f"UNTRAINED MODEL ({model.preset}): train one with  {retrain_command(model.preset)}"
    if model.barely_trained:
        return (f"BARELY TRAINED MODEL ({model.preset}, {model.steps} training steps): train it longer "
                f"(--resume); the shipped cpu model took 6,002")
    return None


def recording_text(app) -> str | None:
    recorder = app.recorder
    return None if recorder is None else f"REC {recorder.frames_written}"


def session_meta(app) -> dict:
    """What a session records about this drive (the recorder adds versions, size and times)."""
    from neural_render.model import FORWARD_REVISION  # torch: imported by the renderer already

    renderer = app.renderer
    return {
        "source": app.source_name,
        "replay": str(app.config.replay) if app.config.replay else None,  # which session was rendered
        # the seed in use, not --seed: the procedural world picks one when --seed is not given
        "seed": getattr(app.source, "seed", app.config.seed),
        "delta_s": getattr(getattr(app.source, "config", None), "delta_s", None),
        "model": app.model.label,
        "model_path": str(app.model.path) if app.model.path else None,
        "untrained": app.model.untrained,
        "training_steps": app.model.steps,
        "preset": app.model.preset,
        "backend": renderer.backend_name,
        "device": renderer.device_name,
        "precision": renderer.precision,
        "compiled": renderer.compiled,  # what runs (--compile asked; a failed compile runs eager)
        "forward_revision": FORWARD_REVISION,  # the network's maths: a replay of another revision differs
        "threaded": app.pool is not None,
    }
