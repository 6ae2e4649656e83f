"""The drive's pacing (game.app.timing.Pacer): a stall is dropped, not caught up in fast-forward."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

pygame = pytest.importorskip("pygame")


DISK_FULL = ("session.json could not be updated at close: the disk is full: free some space or record to "
             "another disk; frames.jsonl still holds every complete frame")


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
