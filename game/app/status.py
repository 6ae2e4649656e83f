"""What the HUD says and what a recorded session's metadata says about the drive, from the values the
App passes in (drawing is game.view.hud's job)."""

from __future__ import annotations

from game.view.layout import LAYOUTS
from neural_render.model import FORWARD_REVISION


def hud_lines(frame, rates: tuple[float, float, float], timings: dict[str, float], *, source_name: str,
              threaded: bool, model_label: str, renderer, size: tuple[int, int], layout: int,
              autopilot: bool, profiler: list[str], weather: str | None = None) -> list:
    """The info panel's lines: text, or (label, value, low, high) for a bar. rates: FrameStats.rates();
    timings: this tick's milliseconds per stage; profiler: its live p50 / p95 lines, if profiling;
    weather: the preset chosen last (C / Shift+C), which stays in view after its notice fades."""
    fps, tick_rate, sim_rate = rates
    control = frame.ego.control
    # A replay shows the recorded drive: its autopilot is the frame's, not the (unused) keyboard's
    autopilot = control.autopilot if source_name == "replay" else autopilot
    lines: list = [  # no title line: the window's caption says neural-drive
        f"source    {source_name}",
        f"client    {fps:5.1f} FPS",
        f"ticks     {tick_rate:5.1f} /s  (sim {sim_rate:.2f}x)",
        f"mode      {'threaded (+1 tick)' if threaded else 'sequential'}",
        f"model     {model_label}",
        f"backend   {renderer.backend_name} {renderer.device_name} {renderer.precision}"
        f"{' compiled' if renderer.compiled else ''}",
        f"history   {'recurrent' if renderer.history_enabled else 'frame-by-frame'}",
        f"res       {size[0]}x{size[1]}",
        f"layout    {LAYOUTS[layout]}",
        *([f"weather   {weather}"] if weather else []),
        "",
    ]
    for name in ("source", "render", "inference", "display", "record"):
        if name in timings:
            lines.append(f"{name:<10}{timings[name]:6.1f} ms")
    if profiler:
        lines += ["", "p50 / p95 (profiler)"] + profiler
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


def session_meta(source_name: str, config, source, model, renderer, threaded: bool) -> dict:
    """What a session records about this drive (the recorder adds versions, size and times)."""
    return {
        "source": source_name,
        "replay": str(config.replay) if config.replay else None,  # which session was rendered
        # the seed in use, not --seed: the procedural world picks one when --seed is not given
        "seed": getattr(source, "seed", config.seed),  # a replay has none of its own
        "delta_s": getattr(getattr(source, "config", None), "delta_s", None),  # the procedural world's step
        "model": model.label,
        "model_path": str(model.path) if model.path else None,
        "untrained": model.untrained,
        "training_steps": model.steps,
        "preset": model.preset,
        "backend": renderer.backend_name,
        "device": renderer.device_name,
        "precision": renderer.precision,
        "compiled": renderer.compiled,  # what runs (--compile asked; a failed compile runs eager)
        "forward_revision": FORWARD_REVISION,  # the network's maths: a replay of another revision differs
        "threaded": threaded,
    }
