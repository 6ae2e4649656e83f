"""Where the panes go in the window, and drawing them there.

Panes, in order: "labels" (the semantic map in the CityScapes palette), "render" (the neural frame),
"engine" (the source's own rgb, when it has one). TAB cycles three layouts:
- side by side: every pane, as large as fits, in the row/column grid that gives the biggest panes
  (a row for a wide window, two columns for 1280x720 with three 2:1 panes). The grid's empty cell
  holds the HUD; with the HUD off (F1) the render pane takes that space instead: it grows, with the
  other panes stacked in a column beside it (853x427 against 640x320 at 1280x720);
- render only: the neural frame fills the window;
- inset: the neural frame fills the window with the label map in the bottom-right quarter.
Panes keep their aspect ratio (letterboxed, centred). `pane_rects` is pure so tests can find the panes.
"""

from __future__ import annotations

import math

import numpy as np
import pygame

LAYOUTS = ("side by side", "render only", "render + label inset")
Rect = tuple[int, int, int, int]  # x, y, width, height


def _fit(box: Rect, aspect: float) -> Rect:
    """Largest rect of width/height = aspect centred in box."""
    x, y, w, h = box
    width = min(w, int(h * aspect))
    height = min(h, int(width / aspect))
    width = max(1, width)
    height = max(1, height)
    return x + (w - width) // 2, y + (h - height) // 2, width, height


def _grid(n: int, window: tuple[int, int], aspect: float) -> tuple[int, int]:
    """(columns, rows) that make n panes of this aspect as large as possible in the window."""
    width, height = window
    best, best_scale = (n, 1), -1.0
    for cols in range(1, n + 1):
        rows = math.ceil(n / cols)
        scale = min(width / cols / aspect, height / rows)
        if scale >= best_scale - 1e-9:  # ties go to more columns: the row reads left to right
            best, best_scale = (cols, rows), scale
    return best


def _featured(window: tuple[int, int], aspect: float, names: tuple[str, ...]) -> dict[str, Rect]:
    """The render pane h high, the n other panes h / n high in a column at its right, centred: the
    pair is h * aspect * (1 + 1/n) wide, so h is the largest that fits both sides of the window."""
    width, height = window
    others = [name for name in names if name != "render"]
    main_h = int(min(height, width / (aspect * (1 + 1 / len(others)))))
    main_w, side_h = int(main_h * aspect), main_h // len(others)
    side_w = int(side_h * aspect)
    x0, y0 = (width - main_w - side_w) // 2, (height - main_h) // 2
    rects = {"render": (x0, y0, main_w, main_h)}
    for i, name in enumerate(others):
        rects[name] = (x0 + main_w, y0 + i * side_h, side_w, side_h)
    return rects


def pane_rects(layout: int, window: tuple[int, int], pane_size: tuple[int, int],
               names: tuple[str, ...], hud_cell: bool = True) -> dict[str, Rect]:
    """Rectangles (x, y, w, h) in window pixels of the visible panes for a layout index. hud_cell:
    keep the side-by-side grid's empty cell for the HUD; False lets the panes take it."""
    width, height = window
    aspect = pane_size[0] / pane_size[1]
    mode = LAYOUTS[layout % len(LAYOUTS)]
    if mode == "render only":
        return {"render": _fit((0, 0, width, height), aspect)}
    if mode == "render + label inset":
        main = _fit((0, 0, width, height), aspect)
        x, y, w, h = main
        inset_w, inset_h = max(1, w // 4), max(1, h // 4)
        rects = {"render": main}
        if "labels" in names:
            rects["labels"] = (x + w - inset_w - 4, y + h - inset_h - 4, inset_w, inset_h)
        return rects
    cols, rows = _grid(len(names), window, aspect)
    if not hud_cell and cols * rows > len(names) and "render" in names:
        return _featured(window, aspect, names)
    cell_w, cell_h = width // cols, height // rows
    return {
        name: _fit(((i % cols) * cell_w, (i // cols) * cell_h, cell_w, cell_h), aspect)
        for i, name in enumerate(names)
    }


def free_cell(layout: int, window: tuple[int, int], pane_size: tuple[int, int], count: int) -> Rect | None:
    """The empty grid cell of the side-by-side layout (three panes in a 2x2 grid leave one), where the
    HUD can sit without covering a pane; None when there is none."""
    if LAYOUTS[layout % len(LAYOUTS)] != "side by side":
        return None
    cols, rows = _grid(count, window, pane_size[0] / pane_size[1])
    if cols * rows == count:
        return None
    cell_w, cell_h = window[0] // cols, window[1] // rows
    return (count % cols) * cell_w, (rows - 1) * cell_h, cell_w, cell_h


def hud_origin(layout: int, window: tuple[int, int], pane_size: tuple[int, int],
               rects: dict[str, Rect]) -> tuple[int, int]:
    """Top-left of the HUD panel: the grid's empty cell, else the top-left pane's corner. The window's
    corner sits in a letterbox band whenever the panes are wider than the window, and the panel's
    translucent box is invisible on black there: its text seemed to start above its box."""
    spare = free_cell(layout, window, pane_size, len(rects))
    if spare is not None:
        return spare[:2]
    top, left = min((y, x) for x, y, _, _ in rects.values())
    return left, top


def draw_panes(surface, layout: int, images: dict[str, np.ndarray], hud_cell: bool = True) -> dict[str, Rect]:
    """Blit each (H, W, 3) uint8 image scaled into its rect; returns the rects used."""
    surface.fill((0, 0, 0))
    first = next(iter(images.values()))
    pane_size = (first.shape[1], first.shape[0])
    rects = pane_rects(layout, surface.get_size(), pane_size, tuple(images), hud_cell)
    for name, rect in rects.items():
        # surfarray wants (W, H, 3): a transposed view, no copy of the pixels until make_surface.
        image = pygame.surfarray.make_surface(np.ascontiguousarray(images[name]).swapaxes(0, 1))
        if image.get_size() != rect[2:]:
            image = pygame.transform.scale(image, rect[2:])
        surface.blit(image, rect[:2])
        if name == "labels" and LAYOUTS[layout % len(LAYOUTS)] == "render + label inset":
            pygame.draw.rect(surface, (255, 255, 255), rect, 1)
    return rects
