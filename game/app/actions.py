"""The drive's one-shot keys (game.keys.keyboard names them): each acts on the App between ticks, when
no source step is in flight, and says what it did in a HUD notice."""

from __future__ import annotations

from game.startup.cli import LaunchError
from game.startup.rendering import make_renderer, next_backend
from game.view.layout import LAYOUTS
from neural_render.runtime import available_backends

RED = (255, 90, 90)


def respawn(app) -> None:
    respawn_source = getattr(app.source, "respawn", None)  # a source may have no spawn points
    if respawn_source is None:
        app.hud.notify(f"the {app.source_name} source cannot respawn", color=RED)
        return
    app.pending = respawn_source()  # a cut frame, shown next instead of a step: the Renderer drops its history
    app.pacer.restart()
    app.hud.notify("Respawned (renderer history reset)")


def weather(app, step: int) -> None:
    names = getattr(app.source, "weather_names", None)  # a source may have no weather presets
    if not names:
        app.hud.notify(f"the {app.source_name} source has no weather presets", color=RED)
        return
    app.weather = (app.weather + step) % len(names)
    app.weather_name = app.source.set_weather(app.weather) or names[app.weather]  # the HUD keeps showing it
    # A model trained without weather renders every preset alike: say so where the key was pressed.
    ignored = "" if app.renderer.takes_weather else " (the engine image only: this model ignores weather)"
    app.hud.notify(f"Weather: {app.weather_name}{ignored}")


def layout(app) -> None:
    app.layout = (app.layout + 1) % len(LAYOUTS)
    app.hud.notify(f"Layout: {LAYOUTS[app.layout]}")


def history(app) -> None:
    app.renderer.history_enabled = not app.renderer.history_enabled
    mode = "recurrent" if app.renderer.history_enabled else "frame-by-frame (expect flicker)"
    app.hud.notify(f"Renderer: {mode}")


def backend(app) -> None:
    """Rebuild the Renderer on the next available backend; keep the old one when that fails."""
    names = [*available_backends(app.config.device), *(["remote"] if app.config.server else [])]
    current = app.renderer.backend_name
    if not [name for name in names if name != current]:
        app.hud.notify(f"{current} is the only backend available here")
        return
    candidate = app.backend_tried = next_backend(names, current, app.backend_tried)
    try:
        renderer = make_renderer(app.model.model, candidate, app.config.device, app.config.precision,
                                 app.size, app.config.compile, app.config.server)
    except LaunchError as error:
        app.hud.notify(f"backend {candidate} failed; staying on {current}", color=RED, seconds=5.0)
        print(f"backend switch failed: {error}")
        return
    renderer.history_enabled = app.renderer.history_enabled
    app.renderer.close()
    app.renderer = renderer
    compiled = ", compiled: its first frame compiles, tens of seconds" if renderer.compiled else ""
    app.hud.notify(f"Backend: {renderer.backend_name} on {renderer.device_name} ({renderer.precision}{compiled})")


def toggle_hud(app) -> None:
    app.hud.show_info = not app.hud.show_info


def toggle_help(app) -> None:
    app.hud.show_help = not app.hud.show_help


KEY_ACTIONS = {
    "autopilot": lambda app: app.hud.notify(f"Autopilot {'On' if app.keyboard.autopilot else 'Off'}"),
    "reverse": lambda app: app.hud.notify(f"Reverse {'On' if app.keyboard.reverse else 'Off'}"),
    "respawn": respawn,
    "record": lambda app: app.recording.toggle(app.session_meta(), app.renderer.compiled),
    "weather_next": lambda app: weather(app, +1),
    "weather_prev": lambda app: weather(app, -1),
    "layout": layout,
    "history": history,
    "backend": backend,
    "hud": toggle_hud,
    "help": toggle_help,
}
