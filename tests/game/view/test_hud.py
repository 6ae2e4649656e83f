"""The HUD (game.view.hud) in small and large windows: the panel, the help overlay, notices and the REC
indicator fit and keep clear of each other."""

from __future__ import annotations

import numpy as np
import pytest

pygame = pytest.importorskip("pygame")

from support.game import headless_env  # noqa: E402,F401 (fixtures)

DISK_FULL = ("session.json could not be updated at close: the disk is full: free some space or record to "
             "another disk; frames.jsonl still holds every complete frame")


def _hud(size):
    from game.view.hud import HUD

    pygame.display.init()
    pygame.font.init()
    surface = pygame.Surface(size)
    surface.fill((0, 0, 255))
    return HUD(), surface


def test_hud_draws_in_the_smallest_window(headless_env):
    from game.view.hud import HUD

    pygame.display.init()
    pygame.font.init()
    surface = pygame.Surface((16, 16))  # --window 16x16 crashed: "Cannot scale to negative size"
    hud = HUD()
    hud.notify("source: procedural world (no CARLA server answered at 127.0.0.1:2000)")
    hud.show_help = True
    surface.fill((10, 200, 30))
    hud.draw(surface, ["neural-drive", ("steer", 0.2, -1.0, 1.0)], banner="UNTRAINED MODEL", recording="REC 1")
    pixels = pygame.surfarray.array3d(surface).reshape(-1, 3)
    assert (pixels != (10, 200, 30)).any(axis=1).any()  # it drew (clipped) rather than skipping or crashing


def test_hud_panel_stays_above_the_notices_in_the_2x2_layout(headless_env):
    # At 1280x720 the info panel sits in the bottom-right 640x360 cell; its last rows stay above the
    # bottom-centred notice ("source: ...") that every start shows.
    from game.view.hud import HUD, PANEL_WIDTH

    pygame.display.init()
    pygame.font.init()
    surface = pygame.Surface((1280, 720))
    surface.fill((10, 200, 30))
    hud = HUD()
    lines = ["source    procedural"] * 9 + [""] + ["render      12.7 ms"] * 4 + [""] + ["autopilot on"] * 5
    hud.draw(surface, lines, origin=(640, 360))  # no notice showing: the panel must not move when one comes
    panel = pygame.surfarray.array3d(surface)[640:640 + PANEL_WIDTH]  # (x, y, rgb)
    drawn_rows = (panel != (10, 200, 30)).any(axis=2).any(axis=0).nonzero()[0]
    assert drawn_rows.max() < 720 - hud.notice.zone_height()
    assert drawn_rows.min() > 320  # slid up into the letterbox band, not over the pane above


@pytest.mark.parametrize("size", [(640, 360), (800, 600), (200, 100)])
def test_help_fits_the_window(headless_env, size):
    hud, surface = _hud(size)
    hud.show_help, hud.show_info = True, False
    hud.draw(surface, [])
    pixels = pygame.surfarray.array3d(surface)  # (W, H, 3)
    edges = np.concatenate([pixels[:3], pixels[-3:]])
    # white text ran off the right edge below ~960 px; the box's padding is all that may touch an edge
    assert (edges.min(axis=2) > 150).sum() == 0


def test_a_long_notice_wraps_instead_of_shrinking(headless_env):
    hud, surface = _hud((800, 600))
    hud.notify("recording stopped: " + DISK_FULL, color=(255, 80, 80), seconds=6.0)
    hud.show_info = False
    hud.draw(surface, [])
    pixels = pygame.surfarray.array3d(surface).astype(int)
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 120) & (pixels[..., 2] < 120)
    rows = np.flatnonzero(red.any(axis=0))
    columns = np.flatnonzero(red.any(axis=1))
    # shrunk onto one line it was ~7 px high, unreadable; wrapped, it spans several full-size lines
    assert rows.max() - rows.min() > 2 * hud.big_font.get_linesize()
    assert rows.max() < 600 and columns.min() > 0 and columns.max() < 799


def test_the_rec_indicator_keeps_clear_of_the_panel(headless_env):
    from game.view.hud import PANEL_WIDTH, panel_span

    hud, surface = _hud((640, 360))
    lines = [f"line {i}" for i in range(18)]
    origin = (320, 180)  # the 2x2 layout's free cell at 640x360: the panel slides up to the top
    hud.draw(surface, lines, recording="REC 4", origin=origin)
    top, _, height = panel_span(360, lines, origin[1], hud.notice.zone_height())
    pixels = pygame.surfarray.array3d(surface).astype(int)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 100) & (pixels[..., 2] < 100)
    assert red.any()
    assert not red[origin[0]:origin[0] + PANEL_WIDTH, top:top + height].any()  # "procedural● REC 4"
