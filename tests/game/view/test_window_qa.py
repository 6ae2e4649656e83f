"""Defects found driving the window (QA pass under Xvfb, 640x360 / 800x600 / 1280x720 windows): a
recording damaged while it was finalized was reported as fine, the help overlay and long notices did
not fit smaller windows, the REC indicator ran into the HUD panel, and the pacing fast-forwarded the
drive after every stall."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

pygame = pytest.importorskip("pygame")
from support.game import headless_env, make_app, post_key, tiny_model_path  # noqa: E402,F401

DISK_FULL = ("session.json could not be updated at close: the disk is full: free some space or record to "
             "another disk; frames.jsonl still holds every complete frame")


class _DamagedAtClose:
    """A real recorder whose close fails the way a disk that filled up meanwhile makes it fail (the
    videos and session.json are finalized there): error is set only once closed."""

    def __init__(self, recorder) -> None:
        self._recorder, self._closed = recorder, False

    def __getattr__(self, name):
        return getattr(self._recorder, name)

    def close(self) -> None:
        self._recorder.close()
        self._closed = True

    @property
    def error(self):
        return DISK_FULL if self._closed else None


def test_a_recording_damaged_at_exit_fails_the_headless_run(make_app, capsys):
    app = make_app("--headless", "--record", "rec", "--frames", "3")
    app.recording.recorder = _DamagedAtClose(app.recording.recorder)
    assert app.run() == 1  # it used to say "recorded 3 frames" and exit 0
    err = capsys.readouterr().err
    assert "with an error" in err and "disk is full" in err


def test_a_recording_damaged_when_r_stops_it_is_said_in_the_window(make_app, capsys):
    app = make_app("--headless")
    post_key(pygame.K_r)
    assert app.tick() and app.tick()
    app.recording.recorder = _DamagedAtClose(app.recording.recorder)
    post_key(pygame.K_r)
    assert app.tick()
    for thread in app.recording.finishing:
        thread.join()
    assert "recording damaged" in app.hud.notice.text and "disk is full" in app.hud.notice.text
    assert app.recording.error == DISK_FULL
    assert "with an error" in capsys.readouterr().err



def test_r_twice_within_one_tick_leaves_no_empty_session(make_app, headless_env):
    app = make_app("--headless")
    post_key(pygame.K_r)
    post_key(pygame.K_r)
    assert app.tick()
    assert app.recording.recorder is None and "cancelled" in app.hud.notice.text
    assert not (headless_env / "sessions").exists()  # it used to hold a 0-frame session replay refused
    post_key(pygame.K_r)
    assert app.tick()
    post_key(pygame.K_r)
    assert app.tick()
    for thread in app.recording.finishing:
        thread.join()
    (session,) = (headless_env / "sessions").iterdir()
    assert (session / "frames.jsonl").read_text().count("\n") == 1  # one tick recorded: kept


def test_r_then_esc_within_one_tick_leaves_no_empty_session(make_app, headless_env):
    app = make_app("--headless")
    post_key(pygame.K_r)
    post_key(pygame.K_ESCAPE)
    assert app.run() == 0
    assert not (headless_env / "sessions").exists()  # the close kept the 0-frame session

def _hud(size):
    from game.view.hud import HUD

    pygame.display.init()
    pygame.font.init()
    surface = pygame.Surface(size)
    surface.fill((0, 0, 255))
    return HUD(), surface


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


def test_pacing_drops_a_stall_instead_of_fast_forwarding(monkeypatch):
    from game.app.timing import Pacer

    pacer = Pacer()
    pacer.pace(SimpleNamespace(time_s=0.0, cut=True))
    time.sleep(0.3)  # a stall: a backend build (K), a recording start, the first inference
    start = time.perf_counter()
    for i in range(1, 5):
        pacer.pace(SimpleNamespace(time_s=0.05 * i, cut=False))
    # caught up unpaced, these ticks took no time at all: the drive ran 10x after a 2 s stall
    assert time.perf_counter() - start > 0.1
