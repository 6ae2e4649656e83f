"""Opening the window (game.view.display): SDL's offscreen fallback is run headless, and said."""

from __future__ import annotations

import pytest

pygame = pytest.importorskip("pygame")

from support.game import headless_env  # noqa: E402,F401 (fixtures)


def test_sdl_offscreen_fallback_is_headless(headless_env, monkeypatch):
    import game.view.display as display

    # With a stale DISPLAY, SDL silently picks its offscreen driver: set_mode works, nothing shows.
    monkeypatch.setattr(display, "headless_reason", lambda requested: (False, None))
    monkeypatch.setenv("DISPLAY", ":1234")
    try:
        _, headless, message = display.open_display((64, 32), requested_headless=False)
    finally:
        pygame.display.quit()
    assert headless and "no window could be opened on display :1234" in message
