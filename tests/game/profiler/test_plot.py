"""latency.png: every axis labelled, end to end drawn in steps like the stack under it."""

from game.profiler.plot import latency_figure
from game.profiler.report import collect
from support.profiler import clock  # noqa: F401 (clock is a fixture)
from support.profiler_clock import scripted_session


def test_plot_labels_every_axis_and_draws_end_to_end_like_the_stack(clock):
    data = collect(scripted_session(clock, warmup=1, frames=8))
    figure = latency_figure(data["frames"], data["stage_ms"], data["e2e_ms"], "t")
    for axes in figure.axes:
        assert axes.get_xlabel() and axes.get_ylabel(), axes.get_title()
    timeline = figure.axes[0]
    (e2e,) = [line for line in timeline.get_lines() if line.get_label() == "end_to_end"]
    assert e2e.get_drawstyle() == "steps-mid"  # the stack is step="mid": a plain line cut across it
