"""What the one-shot keys do (game.keys.keyboard names them): respawn, recording, weather, layouts, the
renderer's history and backend, HUD and help. Each says what happened in a fading notification.
Optional parts (the session recorder) are imported when first used, so their absence costs only
the feature.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from game.view.layout import LAYOUTS
from game.app.status import session_meta

RED = (255, 90, 90)


def apply_action(app, action: str) -> bool:
    """Carry out one action; False means quit."""
    if action == "quit":
        return False
    handler = _HANDLERS.get(action)
    if handler is not None:
        handler(app)
    return True


def _autopilot(app) -> None:
    app.hud.notify(f"Autopilot {'On' if app.keyboard.autopilot else 'Off'}")


def _reverse(app) -> None:
    app.hud.notify(f"Reverse {'On' if app.keyboard.reverse else 'Off'}")


def _respawn(app) -> None:
    respawn = getattr(app.source, "respawn", None)
    if respawn is None:
        app.hud.notify(f"the {app.source_name} source cannot respawn", color=RED)
        return
    app.pending = respawn()  # a cut frame, shown next instead of a step: the Renderer drops its history
    app.pace_origin = None
    app.hud.notify("Respawned (renderer history reset)")


def _weather(app, step: int) -> None:
    names = getattr(app.source, "weather_names", None)
    if not names or not hasattr(app.source, "set_weather"):
        app.hud.notify(f"the {app.source_name} source has no weather presets", color=RED)
        return
    app.weather = (app.weather + step) % len(names)
    name = app.source.set_weather(app.weather)
    app.hud.notify(f"Weather: {name or names[app.weather]}")


def _layout(app) -> None:
    app.layout = (app.layout + 1) % len(LAYOUTS)
    app.hud.notify(f"Layout: {LAYOUTS[app.layout]}")


def _history(app) -> None:
    app.renderer.history_enabled = not app.renderer.history_enabled
    mode = "recurrent" if app.renderer.history_enabled else "frame-by-frame (expect flicker)"
    app.hud.notify(f"Renderer: {mode}")


def _backend(app) -> None:
    """Rebuild the Renderer on the next available backend; keep the old one when that fails."""
    from game.startup.cli import LaunchError
    from game.startup.rendering import available_backends, make_renderer

    names = available_backends(app.config.device)
    current = app.renderer.backend_name
    if not [name for name in names if name != current]:
        app.hud.notify(f"{current} is the only backend available here")
        return
    # Step on from the last backend tried (not the current one), so a failing backend is skipped
    # on the next press instead of being retried forever.
    cursor = app.backend_tried if app.backend_tried in names else current
    i = names.index(cursor) if cursor in names else -1
    candidate = names[(i + 1) % len(names)]
    if candidate == current:
        candidate = names[(i + 2) % len(names)]
    app.backend_tried = candidate
    try:
        renderer = make_renderer(app.model.model, candidate, app.config.device, app.config.precision, app.size,
                                 app.config.compile)
    except LaunchError as error:
        app.hud.notify(f"backend {candidate} failed; staying on {current}", color=RED, seconds=5.0)
        print(f"backend switch failed: {error}")
        return
    renderer.history_enabled = app.renderer.history_enabled
    close = getattr(app.renderer, "close", None)
    if callable(close):
        close()
    app.renderer = renderer
    compiled = ", compiled: its first frame compiles, tens of seconds" if renderer.compiled else ""
    app.hud.notify(f"Backend: {renderer.backend_name} on {renderer.device_name} ({renderer.precision}{compiled})")


def _record(app) -> None:
    if app.recorder is not None:
        stop_recording(app, wait=False)
    else:
        start_recording(app)


def start_recording(app) -> None:
    try:
        from carla_bridge.session import SessionRecorder
    except ImportError as error:
        app.hud.notify("recording is not available in this checkout", color=RED)
        print(f"recording unavailable: {error}")
        return
    path = _new_session_dir(app.config.record or Path("sessions"))
    app.recorder = SessionRecorder(
        path, session_meta(app), size=app.size, record_rgb=app.config.record_rgb, video=True
    )
    if app.recorder.error:
        app.recording_error = app.recorder.error  # the exit status says so (App.run)
        app.hud.notify(f"recording failed: {app.recorder.error}", color=RED, seconds=6.0)
        print(f"recording failed: {app.recorder.error}")
        app.recorder = None
        return
    app.hud.notify(f"Recording to {path}")
    print(f"recording to {path}")


def stop_recording(app, wait: bool = True) -> None:
    """Finalize the recording. wait=False (the R key) finishes it in a thread: the close waits for the
    writer and ffmpeg, 0.5-0.7 s measured on a 2-core box, which froze the drive on every R. App.close
    joins that thread, so nothing is cut off at exit."""
    recorder, app.recorder = app.recorder, None
    # R twice within one tick, or R then ESC: nothing to keep (replay refuses a 0-frame session)
    if recorder.frames_queued == 0 and recorder.discard_if_empty():
        app.hud.notify("Recording cancelled: no frame was recorded")
        print(f"recording cancelled: no frame was recorded; removed {recorder.path}")
        return

    meta = getattr(recorder, "meta", None)  # SessionRecorder's, written to session.json at its close
    if isinstance(meta, dict):  # what ran, not what was asked at the start: a compile that fails runs eager
        meta["compiled"] = app.renderer.compiled

    def finish() -> None:
        recorder.close()
        # The close flushes the queue and finalizes the videos and session.json: a disk that filled up
        # meanwhile fails there (truncated mp4s, a stale session.json). That used to be reported as
        # "recorded N frames" and exit status 0, the damage said nowhere.
        error = recorder.error
        if error:
            app.recording_error = error  # a headless run's exit status says so (App.run)
            app.hud.notify(f"recording damaged: {error}", color=RED, seconds=8.0)
            print(f"recorded {recorder.frames_written} frames to {recorder.path}, with an error: {error}",
                  file=sys.stderr)
        else:
            print(f"recorded {recorder.frames_written} frames to {recorder.path}")

    if wait:
        finish()
        if not recorder.error:
            app.hud.notify(f"Recording stopped: {recorder.frames_written} frames in {recorder.path}")
        return
    app.hud.notify(f"Recording stopped: {recorder.path}")
    thread = threading.Thread(target=finish, name="recording-close")
    thread.start()
    app.finishing.append(thread)


def _new_session_dir(root: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = root / stamp, 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    return path


def _toggle_hud(app) -> None:
    app.hud.show_info = not app.hud.show_info


def _toggle_help(app) -> None:
    app.hud.show_help = not app.hud.show_help


_HANDLERS = {
    "autopilot": _autopilot,
    "reverse": _reverse,
    "respawn": _respawn,
    "record": _record,
    "weather_next": lambda app: _weather(app, +1),
    "weather_prev": lambda app: _weather(app, -1),
    "layout": _layout,
    "history": _history,
    "backend": _backend,
    "hud": _toggle_hud,
    "help": _toggle_help,
}
