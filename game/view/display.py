"""Opening the window, or deciding there is none: the headless handling.

Headless = SDL's dummy video driver: pygame.display works (the window surface exists, so --screenshot
still saves the composed view) but nothing appears. Chosen by --headless, by SDL_VIDEODRIVER already
set to dummy/offscreen, by a Linux session without DISPLAY or WAYLAND_DISPLAY, or after
pygame.display.set_mode fails or lands on SDL's offscreen fallback; the last four say so.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pygame

DEFAULT_WINDOW = (1280, 720)
HEADLESS_DRIVERS = ("dummy", "offscreen")


def headless_reason(requested: bool) -> tuple[bool, str | None]:
    """(headless, why) before trying to open anything."""
    if requested:
        return True, None
    driver = os.environ.get("SDL_VIDEODRIVER", "")
    if driver in HEADLESS_DRIVERS:
        return True, f"SDL_VIDEODRIVER={driver}: no window, running headless"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return True, "no display found (DISPLAY and WAYLAND_DISPLAY are unset): running headless"
    return False, None


def open_display(window: tuple[int, int], requested_headless: bool) -> tuple[pygame.Surface, bool, str | None]:
    """(window surface, headless, message for the console) with pygame.display and font ready."""
    headless, message = headless_reason(requested_headless)
    if headless:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
    pygame.display.init()
    pygame.font.init()
    try:
        # No vsync flag: the loop must never wait on the display (the flip copies and returns).
        surface = pygame.display.set_mode(window)
    except pygame.error as error:
        if headless:
            raise
        pygame.display.quit()
        os.environ["SDL_VIDEODRIVER"] = "dummy"
        pygame.display.init()
        surface = pygame.display.set_mode(window)
        headless, message = True, f"cannot open a window ({error}): running headless"
    driver = pygame.display.get_driver()
    if not headless and driver in HEADLESS_DRIVERS:
        # SDL falls back to its offscreen driver when no X/Wayland server answers (a stale DISPLAY):
        # set_mode succeeds but nothing appears and no key arrives, so the car would sit still with the
        # autopilot off, forever, without a word. Run headless, and say so.
        where = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or "none"
        headless, message = True, f"no window could be opened on display {where} (SDL fell back to its " \
                                  f"{driver} driver): running headless"
    pygame.display.set_caption("neural-drive")
    return surface, headless, message


def save_screenshot(surface: pygame.Surface, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pygame.image.save(surface, str(path))
