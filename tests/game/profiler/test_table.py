"""The console tables: the per-stage latency table's wording and the backend comparison's verdict."""

from game.profiler.profiler import Profiler
from game.profiler.report import build_report
from game.profiler.table import comparison_table, stage_table
from support.profiler import META, clock  # noqa: F401 (clock is a fixture)
from support.profiler_clock import scripted_session


def test_comparison_table_verdict_skips_failed_and_empty_rows():
    rows = [{"backend": "a", "error": "RuntimeError: no"},
            {"backend": "b", "error": None, "p50": 3.0, "frames": 4},
            {"backend": "c", "error": None, "p50": 1.5, "frames": 4},
            {"backend": "d", "error": None, "p50": None, "frames": 0}]
    text = comparison_table(rows)
    assert "fastest: c" in text and "2.0x" in text  # 3.0 / 1.5 against the runner-up b
    assert "fastest" not in comparison_table(rows[:2])  # one measured backend is no comparison

def test_table_wording_for_one_frame_and_device_sampling(clock):
    profiler = scripted_session(clock, warmup=0, frames=1)
    report = build_report(profiler, META)
    report["device_ms"] = {"render": report["stages"]["render"]}
    report["device_sampled_every_n_frames"] = 2
    text = stage_table(report)
    assert "1 frame measured, 0 warm-up frames skipped" in text
    assert "2th" not in text and "1 frame in 2" in text

def test_sub_10_microsecond_stages_do_not_print_as_zero(clock):
    profiler = Profiler(warmup_frames=0)
    for _ in range(3):
        profiler.begin_frame()
        with profiler.stage("download"):
            clock.advance(0.003)  # 3 us: a real onnxruntime download on the CPU
        profiler.end_frame()
    line = next(l for l in stage_table(build_report(profiler, META)).splitlines() if l.startswith("download"))
    name, count, mean, stdev, *percentiles = line.split()
    assert mean == "<0.01" and set(percentiles) == {"<0.01"}  # 0.003 ms is not 0.00
    assert stdev == "0.00"  # every frame took exactly 3 us: a true zero still reads 0.00
