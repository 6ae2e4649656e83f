"""Heads-up display: the info panel (F1), the help overlay (H or ?), fading notifications and the
"untrained model" banner. Drawing only; what to show comes from game.status.hud_lines.

Modelled on the HUD, FadingText and HelpText of CARLA's PythonAPI/examples/manual_control.py: a
translucent panel at the left, text lines, and bars drawn for (label, value, low, high) entries.
"""

from __future__ import annotations

import pygame

from game.bindings import KEY_BINDINGS

PANEL_WIDTH = 250
LINE_HEIGHT = 16
WHITE = (255, 255, 255)
RED = (255, 60, 60)

Line = str | tuple[str, float, float, float]  # text, or a bar: (label, value, low, high)


def _fit_width(image: pygame.Surface, width: int) -> pygame.Surface:
    """Shrink rendered text that is wider than the window (small windows, long messages)."""
    width = max(1, width)  # a 16-pixel window leaves a negative width after the margins: pygame raises
    if image.get_width() <= width:
        return image
    height = max(1, image.get_height() * width // image.get_width())
    return pygame.transform.smoothscale(image, (width, height))


def _font(size: int) -> pygame.font.Font:
    # A monospace face keeps the numbers from jittering; pygame's bundled font when none is installed.
    path = pygame.font.match_font("dejavusansmono,liberationmono,ubuntumono,couriernew,monospace")
    return pygame.font.Font(path, size)


class FadingText:
    """A message that stays for `seconds` and fades out over its last second."""

    def __init__(self, font: pygame.font.Font) -> None:
        self.font = font
        self.text = ""
        self.color = WHITE
        self.seconds_left = 0.0

    def set_text(self, text: str, color=WHITE, seconds: float = 2.5) -> None:
        self.text, self.color, self.seconds_left = text, color, seconds

    def tick(self, dt_s: float) -> None:
        self.seconds_left = max(0.0, self.seconds_left - dt_s)

    def draw(self, surface: pygame.Surface) -> None:
        if self.seconds_left <= 0 or not self.text:
            return
        text = _fit_width(self.font.render(self.text, True, self.color), surface.get_width() - 24)
        box = pygame.Surface((text.get_width() + 20, text.get_height() + 10))
        box.set_alpha(int(255 * min(1.0, self.seconds_left)))
        box.blit(text, (10, 5))
        width, height = surface.get_size()
        surface.blit(box, ((width - box.get_width()) // 2, height - box.get_height() - 20))


class HUD:
    """Everything drawn over the panes."""

    def __init__(self) -> None:
        self.show_info = True
        self.show_help = False
        self.font = _font(13)
        self.big_font = _font(18)
        self.notice = FadingText(self.big_font)

    def notify(self, text: str, color=WHITE, seconds: float = 2.5) -> None:
        self.notice.set_text(text, color, seconds)

    def tick(self, dt_s: float) -> None:
        self.notice.tick(dt_s)

    def draw(self, surface: pygame.Surface, lines: list[Line], banner: str | None = None,
             recording: str | None = None, origin: tuple[int, int] = (0, 0)) -> None:
        """origin: top-left of the info panel (an empty grid cell when the layout leaves one)."""
        if self.show_info:
            self._draw_panel(surface, lines, origin, reserve=40 if banner else 0)
        if banner:
            self._draw_banner(surface, banner)
        if recording:
            self._draw_recording(surface, recording)
        self.notice.draw(surface)
        if self.show_help:
            self._draw_help(surface)

    def _draw_panel(self, surface: pygame.Surface, lines: list[Line], origin: tuple[int, int],
                    reserve: int) -> None:
        x, top = origin
        height = LINE_HEIGHT * len(lines) + 16
        bottom = surface.get_height() - reserve  # keep clear of the banner
        top = max(0, min(top, bottom - height))  # slide up when the lines do not fit below the origin
        panel = pygame.Surface((PANEL_WIDTH, max(1, min(bottom - top, height))))  # >= 1: tiny windows
        panel.set_alpha(110)
        surface.blit(panel, (x, top))
        y = top + 8
        for line in lines:
            if y + LINE_HEIGHT > bottom:
                break
            if isinstance(line, tuple):
                self._draw_bar(surface, line, x, y)
            elif line:
                surface.blit(self.font.render(line, True, WHITE), (x + 8, y))
            y += LINE_HEIGHT

    def _draw_bar(self, surface: pygame.Surface, bar: tuple[str, float, float, float], x: int, y: int) -> None:
        label, value, low, high = bar
        surface.blit(self.font.render(label, True, WHITE), (x + 8, y))
        x0, width = x + 100, PANEL_WIDTH - 112
        pygame.draw.rect(surface, WHITE, (x0, y + 3, width, 9), 1)
        fraction = (value - low) / (high - low) if high > low else 0.0
        fraction = max(0.0, min(1.0, fraction))
        if low < 0:  # centred bar (steer): a marker at the value
            pygame.draw.rect(surface, WHITE, (x0 + int(fraction * (width - 6)), y + 3, 6, 9))
        else:
            pygame.draw.rect(surface, WHITE, (x0, y + 3, int(fraction * width), 9))

    def _draw_banner(self, surface: pygame.Surface, text: str) -> None:
        rendered = _fit_width(self.big_font.render(text, True, WHITE), surface.get_width() - 8)
        box = pygame.Surface((surface.get_width(), rendered.get_height() + 8))
        box.fill((170, 0, 0))
        box.set_alpha(200)
        y = surface.get_height() - box.get_height()
        surface.blit(box, (0, y))
        surface.blit(rendered, (max(4, (surface.get_width() - rendered.get_width()) // 2), y + 4))

    def _draw_recording(self, surface: pygame.Surface, text: str) -> None:
        x = surface.get_width() - 150
        pygame.draw.circle(surface, RED, (x, 16), 7)
        surface.blit(self.font.render(text, True, RED), (x + 12, 9))

    def _draw_help(self, surface: pygame.Surface) -> None:
        rows = [("Key", "Action")] + list(KEY_BINDINGS) + [("", "press H or ? to close")]
        key_width = max(self.font.size(keys)[0] for keys, _ in rows) + 16
        width = min(surface.get_width(), key_width + max(self.font.size(a)[0] for _, a in rows) + 32)
        height = min(surface.get_height(), LINE_HEIGHT * len(rows) + 24)
        box = pygame.Surface((width, height))
        box.fill((0, 0, 0))
        box.set_alpha(220)
        x, y = (surface.get_width() - width) // 2, (surface.get_height() - height) // 2
        surface.blit(box, (x, y))
        for i, (keys, action) in enumerate(rows):
            row_y = y + 12 + i * LINE_HEIGHT
            surface.blit(self.font.render(keys, True, WHITE), (x + 12, row_y))
            surface.blit(self.font.render(action, True, WHITE), (x + 12 + key_width, row_y))
