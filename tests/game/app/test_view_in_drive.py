"""What a drive's window shows at 1280x720 beyond the panes' pixels: the HUD panel inside a pane in
the render-only layout, the panes taking the empty grid cell when F1 hides the HUD, and the weather
chosen with C staying in the HUD after its notice."""

from __future__ import annotations

import numpy as np
import pytest

pygame = pytest.importorskip("pygame")

from support.game import headless_env, make_app, post_key, tiny_model_path  # noqa: E402,F401 (fixtures)

WINDOW = "1280x720"  # 64x32 panes scaled to 1280x640: 40 px letterbox bands above and below


def _window(app) -> np.ndarray:
    return pygame.surfarray.array3d(app.surface).swapaxes(0, 1)  # (H, W, 3)


def test_the_hud_text_starts_inside_the_render_pane_in_render_only(make_app):
    from game.view.hud import PANEL_WIDTH

    app = make_app("--headless", "--screenshot", "shot.png", "--window", WINDOW)
    app.layout = 1  # render only
    assert app.tick()
    top = app.rects["render"][1]
    assert top == 40
    band = _window(app)[:top, :PANEL_WIDTH]
    assert not band.any(), "HUD text drawn in the letterbox band above its box"
    assert _window(app)[top:top + 30, :PANEL_WIDTH].any()


def test_f1_lets_the_panes_take_the_empty_quadrant(make_app):
    app = make_app("--headless", "--screenshot", "shot.png", "--window", WINDOW)
    post_key(pygame.K_F1)  # the HUD off
    assert app.tick() and not app.hud.show_info
    assert app.rects["render"][2] > 640  # larger than a 2x2 grid cell
    quadrant = _window(app)[360:, 640:]
    assert (quadrant.any(axis=2)).mean() > 0.3, "an empty black quadrant where the HUD was"


def test_the_weather_stays_in_the_hud_after_its_notice(make_app):
    app = make_app("--headless", "--screenshot", "shot.png")
    post_key(pygame.K_c)
    assert app.tick()
    name = app.source.weather_names[1]
    assert app.hud.notice.text.startswith(f"Weather: {name}")
    app.hud.tick(10.0)  # the notice has faded
    assert app.hud.notice.seconds_left == 0 and f"weather   {name}" in app.hud_lines(app.frame)
