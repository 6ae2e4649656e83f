"""latency.png: per-frame stage timeline (stacked) and a latency histogram per stage.

Drawn with matplotlib's Agg canvas directly (Figure + FigureCanvasAgg), so writing the plot never
switches the global matplotlib backend or touches the pygame window.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from game.profiler.profiler import END_TO_END, STAGES
from game.profiler.stats import percentile

# One colour per canonical stage (matplotlib tab10) so the timeline and histograms agree.
_COLOURS = dict(zip(STAGES, ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")))
_OTHER = "#c7c7c7"
_E2E = "#111111"


def plot_latency(
    frames: np.ndarray,
    stage_ms: dict[str, np.ndarray],
    e2e_ms: np.ndarray,
    path: str | Path,
    title: str = "",
) -> Path:
    """Write the figure. frames: measured frame indices; e2e_ms: ms per frame; stage_ms: {stage: ms per
    frame, NaN where the stage did not run}, all aligned with frames (report.collect)."""
    path = Path(path)
    latency_figure(frames, stage_ms, e2e_ms, title).savefig(path, format="png")
    return path


def latency_figure(frames: np.ndarray, stage_ms: dict[str, np.ndarray], e2e_ms: np.ndarray,
                   title: str = "") -> Any:
    """The matplotlib Figure plot_latency writes (kept apart so its contents can be checked)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = np.asarray(frames, dtype=np.int64)
    # Timeline: only canonical stages are stacked (they do not nest inside each other); the rest of
    # the end-to-end time (loop overhead, HUD, nested helper spans) shows as "other".
    stacked = [s for s in STAGES if s in stage_ms]
    # A stage missing from a frame adds nothing to its stack.
    layers = [np.nan_to_num(np.asarray(stage_ms[s], dtype=np.float64), nan=0.0) for s in stacked]
    e2e = np.asarray(e2e_ms, dtype=np.float64)
    total = np.sum(layers, axis=0) if layers else np.zeros(len(x))
    other = np.clip(np.nan_to_num(e2e - total), 0.0, None)

    hist_names = [END_TO_END] + list(stage_ms)
    ncols = 4
    nrows = 1 + math.ceil(len(hist_names) / ncols)
    fig = Figure(figsize=(4 * ncols, 3.2 * nrows), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(nrows, ncols)
    ax = fig.add_subplot(grid[0, :])
    if len(x):
        ax.stackplot(x, *layers, other, labels=[*stacked, "other"],
                     colors=[_COLOURS[s] for s in stacked] + [_OTHER], step="mid")
        # Drawn in steps like the stack: a plain line cuts diagonally across a one-frame spike.
        ax.plot(x, e2e, color=_E2E, linewidth=0.8, label=END_TO_END, drawstyle="steps-mid")
        top = np.nanmax(np.concatenate([e2e, total + other]))
        ax.set_ylim(0, 1.3 * top if np.isfinite(top) and top > 0 else 1.0)  # headroom for the legend
        ax.legend(loc="upper right", ncols=min(len(stacked) + 2, 8), fontsize=8)
    ax.set_xlabel("frame")
    ax.set_ylabel("ms")
    ax.set_title(title or "per-frame latency by stage")
    ax.margins(x=0)

    for k, name in enumerate(hist_names):
        sub = fig.add_subplot(grid[1 + k // ncols, k % ncols])
        values = np.asarray(e2e if name == END_TO_END else stage_ms[name], dtype=np.float64)
        values = values[np.isfinite(values)]  # drops the frames a stage did not run in (NaN)
        if values.size:
            sub.hist(values, bins=min(50, max(5, values.size // 4)),
                     color=_E2E if name == END_TO_END else _COLOURS.get(name, _OTHER))
            for q, style in ((50, "-"), (95, "--"), (99, ":")):
                sub.axvline(percentile(values, q), color="black", linestyle=style, linewidth=0.8)
        sub.set_title(f"{name} (p50 -, p95 --, p99 ..)", fontsize=9)
        sub.set_xlabel("ms", fontsize=8)
        sub.set_ylabel("frames", fontsize=8)  # a histogram's height is a count of frames
        sub.tick_params(labelsize=7)
    return fig

