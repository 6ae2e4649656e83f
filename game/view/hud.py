"""Heads-up display: the info panel (F1), the help overlay (H or ?), fading notifications and the
"untrained model" banner. Drawing only; what to show comes from game.app.status.hud_lines.

Modelled on the HUD, FadingText and HelpText of CARLA's PythonAPI/examples/manual_control.py: a
translucent panel at the left, text lines, and bars drawn for (label, value, low, high) entries.
"""

from __future__ import annotations

import pygame

from game.keys.bindings import KEY_BINDINGS, NOT_BOUND

PANEL_WIDTH = 250
LINE_HEIGHT = 16
# A blank line only separates groups: a short gap keeps the whole panel (21 rows) in the 360 px cell of
# the 2x2 layout at 1280x720, above the bottom-centred notices, where full-height gaps ran under them.
GAP_HEIGHT = 6
NOTICE_MARGIN = 20  # between a notice's box and the window's bottom edge
NOTICE_MIN_SCALE = 0.6  # a notice shrunk further than this wraps instead (still readable at 0.6)
HELP_MIN_ACTION_WIDTH = 160  # narrower windows get the help table scaled down instead
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


def wrap_text(font: pygame.font.Font, text: str, width: int) -> list[str]:
    """Split text at spaces into lines no wider than width (a single word wider than that keeps a line
    of its own; _fit_width shrinks it)."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and font.size(f"{lines[-1]} {word}")[0] <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


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

    def zone_height(self) -> int:
        """How far above the window's bottom edge a notice can reach (its box and the margin below it)."""
        return self.font.get_height() + 10 + NOTICE_MARGIN

    def draw(self, surface: pygame.Surface) -> None:
        if self.seconds_left <= 0 or not self.text:
            return
        width, height = surface.get_size()
        # A notice a little too wide is shrunk onto one line, as low as it can sit; a long one (why a
        # recording failed: ~200 characters) wraps onto lines: shrunk to one line it was 5-6 px high
        # text even at 1280x720, unreadable. Lines beyond what a tiny window holds are left out.
        one_line = self.font.size(self.text)[0]
        lines = ([self.text] if one_line * NOTICE_MIN_SCALE <= width - 24
                 else wrap_text(self.font, self.text, width - 24))
        most = max(1, (height - NOTICE_MARGIN - 10) // self.font.get_linesize())
        texts = [_fit_width(self.font.render(line, True, self.color), width - 24) for line in lines[:most]]
        line_height = self.font.get_linesize()
        box = pygame.Surface((max(t.get_width() for t in texts) + 20, line_height * (len(texts) - 1)
                              + texts[-1].get_height() + 10))
        box.set_alpha(int(255 * min(1.0, self.seconds_left)))
        for i, text in enumerate(texts):
            box.blit(text, ((box.get_width() - text.get_width()) // 2, 5 + i * line_height))
        surface.blit(box, ((width - box.get_width()) // 2, max(0, height - box.get_height() - NOTICE_MARGIN)))


def _line_height(line: Line) -> int:
    return GAP_HEIGHT if line == "" else LINE_HEIGHT


def panel_span(window_height: int, lines: list[Line], origin_y: int, reserve: int) -> tuple[int, int, int]:
    """(top, bottom limit, height) of the info panel: below origin_y when it fits above the reserved
    strip at the window's bottom, slid up as far as needed (not above the window) when it does not."""
    height = sum(_line_height(line) for line in lines) + 16
    bottom = window_height - reserve
    return max(0, min(origin_y, bottom - height)), bottom, height


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
        panel = None
        if self.show_info:
            # The panel keeps clear of the banner and of the strip where notices appear, always, so it
            # does not jump when one comes; in the 2x2 layout it slides up into the letterbox band.
            panel = self._draw_panel(surface, lines, origin,
                                     reserve=max(40 if banner else 0, self.notice.zone_height()))
        if banner:
            self._draw_banner(surface, banner)
        if recording:
            self._draw_recording(surface, recording, panel)
        self.notice.draw(surface)
        if self.show_help:
            self._draw_help(surface)

    def _draw_panel(self, surface: pygame.Surface, lines: list[Line], origin: tuple[int, int],
                    reserve: int) -> pygame.Rect:
        """Returns the panel's rect (the REC indicator keeps clear of it)."""
        x = origin[0]
        top, bottom, height = panel_span(surface.get_height(), lines, origin[1], reserve)
        panel = pygame.Surface((PANEL_WIDTH, max(1, min(bottom - top, height))))  # >= 1: tiny windows
        panel.set_alpha(110)
        surface.blit(panel, (x, top))
        rect = pygame.Rect(x, top, PANEL_WIDTH, panel.get_height())
        y = top + 8
        for line in lines:
            if y + _line_height(line) > bottom:
                break
            if isinstance(line, tuple):
                self._draw_bar(surface, line, x, y)
            elif line:
                surface.blit(self.font.render(line, True, WHITE), (x + 8, y))
            y += _line_height(line)
        return rect

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

    def _draw_recording(self, surface: pygame.Surface, text: str, panel: pygame.Rect | None = None) -> None:
        """A red dot and "REC n" at the top right, on a dark box. In windows under ~800 px wide the info
        panel reaches the top right (the 2x2 layout's free cell, or the panel slid up): the text ran
        into the panel's ("procedural● REC 4"), so it moves left of the panel, or sits over it."""
        label = self.font.render(text, True, RED)
        box = pygame.Surface((label.get_width() + 30, max(label.get_height(), 14) + 6))
        box.set_alpha(160)
        rect = box.get_rect(topright=(surface.get_width() - 8, 6))
        if panel is not None and rect.colliderect(panel) and panel.left - rect.width - 8 >= 0:
            rect.right = panel.left - 8
        surface.blit(box, rect)
        pygame.draw.circle(surface, RED, (rect.left + 11, rect.centery), 7)
        surface.blit(label, (rect.left + 23, rect.top + (rect.height - label.get_height()) // 2))

    def _draw_help(self, surface: pygame.Surface) -> None:
        """The key table, centred. The action column wraps to the window's width, and a table still too
        big for the window is scaled down to fit: in windows under ~960 px wide its rows ran off the
        right edge ("...the renderer drops it", the not-bound keys cut off)."""
        rows = [("Key", "Action")] + list(KEY_BINDINGS) + [("not bound", NOT_BOUND), ("", "press H or ? to close")]
        key_width = max(self.font.size(keys)[0] for keys, _ in rows) + 16
        natural = max(self.font.size(action)[0] for _, action in rows)
        action_width = max(min(natural, surface.get_width() - key_width - 24), HELP_MIN_ACTION_WIDTH)
        lines = [(keys if i == 0 else "", part) for keys, action in rows
                 for i, part in enumerate(wrap_text(self.font, action, action_width))]
        width = key_width + max(self.font.size(action)[0] for _, action in lines) + 24
        box = pygame.Surface((width, LINE_HEIGHT * len(lines) + 24))
        box.fill((0, 0, 0))
        for i, (keys, action) in enumerate(lines):
            row_y = 12 + i * LINE_HEIGHT
            box.blit(self.font.render(keys, True, WHITE), (12, row_y))
            box.blit(self.font.render(action, True, WHITE), (12 + key_width, row_y))
        scale = min(1.0, surface.get_width() / box.get_width(), surface.get_height() / box.get_height())
        if scale < 1.0:
            box = pygame.transform.smoothscale(box, (max(1, int(box.get_width() * scale)),
                                                     max(1, int(box.get_height() * scale))))
        box.set_alpha(220)
        surface.blit(box, ((surface.get_width() - box.get_width()) // 2,
                           (surface.get_height() - box.get_height()) // 2))
