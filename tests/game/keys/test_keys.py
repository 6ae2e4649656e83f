"""Keys through posted pygame events, on the real procedural world and Renderer: throttle drives the
car forward, P toggles the autopilot, Backspace cuts and resets the renderer, J toggles its history,
TAB cycles layouts, F1/H toggle the HUD and help, C changes the weather, R records, K switches
backend, ESC and closing the window quit."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

pygame = pytest.importorskip("pygame")
from support.game import headless_env, make_app, post_key, tiny_model_path  # noqa: E402,F401


def _ticks(app, n: int) -> None:
    for _ in range(n):
        assert app.tick()


def _forward(a, b) -> float:
    """Metres moved from pose a to pose b along a's heading (CARLA: yaw turns x towards y)."""
    yaw = math.radians(a.yaw)
    return (b.x - a.x) * math.cos(yaw) + (b.y - a.y) * math.sin(yaw)


def test_p_turns_the_autopilot_off_and_w_drives_forward(make_app):
    app = make_app("--headless")
    assert app.keyboard.autopilot  # headless starts on the autopilot
    post_key(pygame.K_p)
    _ticks(app, 4)
    assert not app.keyboard.autopilot and not app.frame.ego.control.autopilot
    still = app.frame.ego
    _ticks(app, 4)  # no key held: the car stays (nearly) where it is
    assert abs(_forward(still.transform, app.frame.ego.transform)) < 0.05

    post_key(pygame.K_w, up=False)  # held until released
    _ticks(app, 15)
    moving = app.frame.ego
    assert moving.control.throttle > 0.5 and moving.speed_mps > 0.5
    assert _forward(still.transform, moving.transform) > 0.1
    post_key(pygame.K_p)
    _ticks(app, 1)
    assert app.keyboard.autopilot and app.frame.ego.control.autopilot


def test_backspace_respawns_with_a_cut_and_resets_the_renderer(make_app):
    app = make_app("--headless")
    _ticks(app, 3)
    assert not app.frame.cut
    resets = []
    # The history drop a cut frame makes inside render() (Renderer.reset() takes the one-caller lock
    # render() already holds, so render() drops the history itself): counted, behaviour kept.
    real_drop = app.renderer._drop_history
    app.renderer._drop_history = lambda: (resets.append(1), real_drop())
    post_key(pygame.K_BACKSPACE)
    _ticks(app, 1)
    assert app.frame.cut and resets  # the Renderer reset on the cut frame
    _ticks(app, 1)
    assert not app.frame.cut and len(resets) == 1


def test_j_toggles_history_and_tab_cycles_layouts(make_app):
    app = make_app("--headless", "--screenshot", "unused.png")  # a screenshot path makes headless draw
    _ticks(app, 1)
    assert app.renderer.history_enabled and set(app.rects) == {"labels", "render", "engine"}
    post_key(pygame.K_j)
    _ticks(app, 1)
    assert not app.renderer.history_enabled
    post_key(pygame.K_j)
    _ticks(app, 1)
    assert app.renderer.history_enabled

    post_key(pygame.K_TAB)
    _ticks(app, 1)
    assert app.layout == 1 and set(app.rects) == {"render"} and app.rects["render"][2] == 256
    post_key(pygame.K_TAB)
    _ticks(app, 1)
    assert app.layout == 2 and set(app.rects) == {"render", "labels"}
    post_key(pygame.K_TAB)
    _ticks(app, 1)
    assert app.layout == 0 and len(app.rects) == 3


def test_hud_help_and_weather_keys(make_app):
    app = make_app("--headless")
    post_key(pygame.K_F1)
    post_key(pygame.K_h)
    _ticks(app, 1)
    assert not app.hud.show_info and app.hud.show_help
    names = getattr(app.source, "weather_names", None)
    if not names:
        pytest.skip("the procedural world has no weather presets")
    post_key(pygame.K_c)
    _ticks(app, 1)
    assert app.weather == 1 % len(names) and "Weather" in app.hud.notice.text
    assert "this model ignores weather" in app.hud.notice.text  # the shipped model was trained without it
    post_key(pygame.K_c, mod=pygame.KMOD_LSHIFT)
    post_key(pygame.K_c, mod=pygame.KMOD_LSHIFT)
    _ticks(app, 1)
    assert app.weather == (len(names) - 1) % len(names)


def test_r_starts_and_stops_a_recording(make_app, headless_env):
    app = make_app("--headless")
    post_key(pygame.K_r)
    _ticks(app, 3)
    recorder = app.recording.recorder
    assert recorder is not None and Path(recorder.path).parent == headless_env / "sessions"  # the working folder's
    post_key(pygame.K_r)
    _ticks(app, 1)
    assert app.recording.recorder is None
    for thread in app.recording.finishing:  # R finalizes in a thread, so the drive does not freeze
        thread.join()
    assert recorder.frames_written >= 2
    assert (headless_env / recorder.path / "session.json").exists()


def test_k_switches_backend_or_says_why_not(make_app):
    from neural_render.runtime import available_backends

    app = make_app("--headless")
    _ticks(app, 1)
    before = app.renderer.backend_name
    post_key(pygame.K_k)
    _ticks(app, 2)
    others = [name for name in available_backends("cpu") if name != before]
    if others:
        assert app.renderer.backend_name in others or "failed" in app.hud.notice.text
    else:
        assert app.renderer.backend_name == before and "only backend" in app.hud.notice.text


@pytest.mark.parametrize("event", ["escape", "ctrl_q", "window_close"])
def test_quit_keys_and_window_close_stop_the_loop(make_app, event):
    app = make_app("--headless")
    _ticks(app, 1)
    if event == "escape":
        post_key(pygame.K_ESCAPE)
    elif event == "ctrl_q":
        post_key(pygame.K_q, mod=pygame.KMOD_LCTRL)
    else:
        pygame.event.post(pygame.event.Event(pygame.QUIT))
    assert app.tick() is False
