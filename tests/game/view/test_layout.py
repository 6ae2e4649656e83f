"""Pane placement (game/view/layout.py): aspect kept, inside the window, the grid that gives the biggest
panes, and the three TAB layouts."""

from __future__ import annotations

import pytest

from game.view.layout import LAYOUTS, free_cell, pane_rects

NAMES = ("labels", "render", "engine")


def _inside(rect, window):
    x, y, w, h = rect
    return x >= 0 and y >= 0 and x + w <= window[0] and y + h <= window[1] and w > 0 and h > 0


@pytest.mark.parametrize("window", [(1280, 720), (384, 128), (1920, 400), (300, 900)])
def test_side_by_side_keeps_aspect_and_stays_inside(window):
    rects = pane_rects(0, window, (64, 32), NAMES)
    assert list(rects) == list(NAMES)
    for rect in rects.values():
        assert _inside(rect, window)
        assert abs(rect[2] / rect[3] - 2.0) < 0.05
    boxes = list(rects.values())
    for i, a in enumerate(boxes):  # no two panes overlap
        for b in boxes[i + 1:]:
            assert a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]


def test_side_by_side_picks_the_grid_with_the_biggest_panes():
    row = pane_rects(0, (384, 128), (64, 32), NAMES)  # a wide window: one row of 128x64
    assert [r[2:] for r in row.values()] == [(128, 64)] * 3
    assert len({r[1] for r in row.values()}) == 1
    grid = pane_rects(0, (1280, 720), (256, 128), NAMES)  # 1280x720: two columns beat a thin row
    assert grid["labels"][2] == 640 and grid["engine"][1] > grid["labels"][1]


def test_two_panes_without_engine_rgb():
    rects = pane_rects(0, (256, 64), (64, 32), ("labels", "render"))
    assert list(rects) == ["labels", "render"] and rects["render"][0] >= 128


def test_render_only_and_inset():
    assert LAYOUTS[1] == "render only" and LAYOUTS[2] == "render + label inset"
    only = pane_rects(1, (640, 480), (64, 32), NAMES)
    assert list(only) == ["render"] and only["render"][2] == 640
    inset = pane_rects(2, (640, 480), (64, 32), NAMES)
    rx, ry, rw, rh = inset["render"]
    lx, ly, lw, lh = inset["labels"]
    assert rw == 640 and lw == rw // 4
    assert rx <= lx and lx + lw <= rx + rw and ry <= ly and ly + lh <= ry + rh  # inside the render pane
    assert pane_rects(3, (640, 480), (64, 32), NAMES) == pane_rects(0, (640, 480), (64, 32), NAMES)


def test_free_cell_is_the_empty_grid_cell():
    assert free_cell(0, (1280, 720), (256, 128), 3) == (640, 360, 640, 360)  # 2x2 grid, bottom right
    assert free_cell(0, (384, 128), (64, 32), 3) is None  # a full row
    assert free_cell(1, (1280, 720), (256, 128), 3) is None  # render only


@pytest.mark.parametrize("window", [(1280, 720), (300, 900), (1000, 1000)])
def test_without_the_hud_the_render_pane_takes_the_empty_cell(window):
    grid = pane_rects(0, window, (256, 128), NAMES)
    featured = pane_rects(0, window, (256, 128), NAMES, hud_cell=False)
    assert set(featured) == set(NAMES)
    boxes = list(featured.values())
    for i, a in enumerate(boxes):
        assert _inside(a, window) and abs(a[2] / a[3] - 2.0) < 0.05
        for b in boxes[i + 1:]:  # no two panes overlap
            assert a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]
    if free_cell(0, window, (256, 128), 3) is not None:  # a grid with a hole: the render pane grows into it
        assert featured["render"][2] > grid["render"][2]
    else:
        assert featured == grid
    if window == (1280, 720):
        assert featured["render"][2:] == (852, 426) and featured["engine"][2:] == (426, 213)


def test_the_hud_starts_at_the_top_left_pane_not_in_the_letterbox_band():
    from game.view.layout import hud_origin

    only = pane_rects(1, (1280, 720), (64, 32), NAMES)
    assert only["render"][1] == 40 and hud_origin(1, (1280, 720), (64, 32), only) == (0, 40)
    grid = pane_rects(0, (1280, 720), (256, 128), NAMES)
    assert hud_origin(0, (1280, 720), (256, 128), grid) == (640, 360)  # the empty cell
