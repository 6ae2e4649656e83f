"""The profiler overhead benchmark (`python -m game.bench profiler`) runs and prints its figure as
last-line JSON."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from game.bench.profiler_overhead import LIMIT_PCT, direct_cost_ns, main, measure

ROOT = Path(__file__).resolve().parents[3]


def test_overhead_command_prints_its_figure_as_last_line_json():
    done = subprocess.run(
        [sys.executable, "-m", "game.bench", "profiler", "--frames", "20", "--block", "5", "--res", "64x32"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["frames"] == 20 and result["res"] == "64x32" and result["limit_pct"] == LIMIT_PCT
    assert isinstance(result["overhead_pct"], float) and result["median_off_ms"] > 0
    assert result["direct_cost_us_per_frame"] >= 0 and "workload" in result


def test_synthetic_workload_in_process(capsys):
    assert main(["--frames", "16", "--block", "4", "--res", "64x32", "--synthetic"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["workload"] == "synthetic numpy workload" and result["frames"] == 16


def test_profiler_calls_cost_microseconds_not_milliseconds():
    # 3 stages + 4 renderer spans + begin/end + HUD read: a few microseconds on any machine; 200 us
    # would already be 2% of a 10 ms frame. Generous bound: the test box is shared and noisy.
    assert direct_cost_ns(repeats=300) < 100_000


def test_bad_flags_are_rejected():
    with pytest.raises(ValueError, match="--block"):
        measure(frames=4, size=(64, 32), block=5, preset="tiny", force_synthetic=True)
    with pytest.raises(SystemExit):
        main(["--res", "64by32", "--synthetic"])
