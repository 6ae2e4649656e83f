"""Unknown RPCs (carla_bridge.standin.unknown) and wire values in the log (carla_bridge.standin.logtext):
counted in bounded memory, logged once each, shortened whatever their size or type."""

from __future__ import annotations

import logging

from carla_bridge.standin.logtext import NAME_CHARS, shorten
from carla_bridge.standin.unknown import UnknownCalls


def test_shorten_keeps_short_strings_and_cuts_everything_else():
    assert shorten("get_world") == "get_world"
    long = shorten("x" * (1 << 20))
    assert long.startswith("x" * NAME_CHARS) and long.endswith(f"... ({1 << 20} characters)") and len(long) < 100
    nested = shorten([["y" * 10_000] * 1000, {"k": [[[[1]]]]}, b"\xff" * 10_000])
    assert len(nested) <= 4 * NAME_CHARS + 3 and nested.endswith("...")


def test_unknown_calls_are_counted_by_short_name_and_logged_once(caplog):
    calls = UnknownCalls(max_names=3)
    with caplog.at_level(logging.ERROR, logger="carla_bridge.standin.methods"):
        assert calls.record("get_nothing", [1, 2], handlers_in="here") == "get_nothing"
        calls.record("get_nothing", [3], handlers_in="here")
        huge = calls.record("z" * (1 << 20), ["a" * (1 << 20)], handlers_in="here")
        calls.record(["a", "list"], [], handlers_in="here")
        for i in range(1000):
            calls.record(f"more_{i}", [], handlers_in="here")
    assert len(huge) < 100 and calls.counts == {"get_nothing": 2, huge: 1, "['a', 'list']": 1}
    assert calls.uncounted == 1000
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and "more than 3 distinct unknown RPCs" in lines[-1], lines
    assert "UNKNOWN RPC 'get_nothing' called with [1, 2]" in lines[0] and sum(map(len, lines)) < 1000
    summary = calls.summary()
    assert summary.startswith("'get_nothing' x2, ") and summary.endswith("1000 calls of further names")
    assert not UnknownCalls()
