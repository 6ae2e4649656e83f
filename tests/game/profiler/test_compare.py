"""Backend comparison (`--profile --backend all`): identical frames through every backend, one table."""

import json

import pytest

from carla_bridge.core.frames import Control
from game.bench.workloads import synthetic_frame
from game.profiler.compare import compare_backends, comparison_frames
from game.signals import Terminated
from neural_render.model import build_generator
from neural_render.runtime import available_backends
from support.profiler import install_fake_runtime

SIZE = (64, 32)


def _frames(count=6):
    return [synthetic_frame(i, SIZE) for i in range(count)]


@pytest.fixture()
def fake_runtime(monkeypatch):
    return install_fake_runtime(monkeypatch, ["fast", "slow", "broken"], ("fast", "slow", "broken", "absent"))


def test_compare_backends_runs_every_available_backend_and_prints_one_table(fake_runtime, tmp_path, capsys):
    rows = compare_backends(_frames(8), model=object(), size=SIZE, warmup_frames=2, report_dir=tmp_path)
    assert [r["backend"] for r in rows] == ["fast", "slow", "broken"]
    fast, slow, broken = rows
    assert fast["frames"] == slow["frames"] == 6 and fast["warmup_skipped"] == 2
    assert slow["p50"] > 2.0 > fast["p50"] and slow["p50"] <= slow["p95"] <= slow["p99"]
    assert slow["stages_p50"]["inference"] > 2.0 and fast["fps"] > slow["fps"]
    assert slow["mean_abs_diff"] == 0.0  # identical frames in, identical images out
    assert broken["error"] == "RuntimeError: engine build failed"
    out = capsys.readouterr().out
    assert out.count("backend comparison") == 1 and "engine build failed" in out
    assert "p95" in out and "slow" in out
    assert "(not compared): absent" in out  # a backend this machine lacks is named, not silently left out
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert saved["rows"][1]["backend"] == "slow" and saved["meta"]["resolution"] == list(SIZE)
    assert saved["meta"]["frames"] == 8 and saved["meta"]["warmup_frames"] == 2 and "cpu" in saved["meta"]["machine"]
    assert (tmp_path / "fast" / "report.json").exists() and (tmp_path / "slow" / "trace.json").exists()
    assert not (tmp_path / "broken").exists()  # and the closing line names only the folders written:
    assert f"report: {tmp_path} (comparison.json, and a folder for fast, slow)" in out


def test_compare_backends_rejects_no_frames(fake_runtime):
    with pytest.raises(ValueError, match="at least one frame"):
        compare_backends([], model=object(), size=SIZE)


def test_comparison_frames_from_a_recorded_session(tmp_path):
    from carla_bridge.session import SessionRecorder

    with SessionRecorder(tmp_path / "s", {"source": "synthetic"}, size=(96, 48), video=False) as recorder:
        for i in range(4):
            recorder.add(synthetic_frame(i, (96, 48)), Control(), None, {"source": 1.0})
    frames = comparison_frames(SIZE, 10, session=tmp_path / "s")
    assert len(frames) == 4 and frames[0].cut  # the session holds 4 frames
    assert frames[0].labels.shape == (SIZE[1], SIZE[0])  # resampled to the renderer's size


def test_comparison_frames_generated_by_the_procedural_world():
    frames = comparison_frames(SIZE, 3, seed=1)
    assert len(frames) == 3 and frames[0].cut and frames[0].labels.shape == (SIZE[1], SIZE[0])


def test_compare_cpu_backends_with_a_tiny_model(tmp_path, capsys):
    backends = [b for b in ("torch", "onnxruntime") if b in available_backends("cpu")]
    if not backends:
        pytest.skip("neither the torch nor the onnxruntime backend is available on the CPU")
    model = build_generator("tiny").eval()
    rows = compare_backends(_frames(5), model, SIZE, backends=backends, device="cpu", warmup_frames=1,
                            report_dir=tmp_path)
    assert [r["error"] for r in rows] == [None] * len(backends)
    for row in rows:
        assert row["frames"] == 4 and row["p50"] > 0 and row["fps"] > 0
        assert {"preprocess", "inference", "download"} <= set(row["stages_p50"])
    if len(rows) == 2:  # same fp32 model on both: images agree to within a level or so
        assert rows[1]["mean_abs_diff"] < 2.0
    assert "backend comparison" in capsys.readouterr().out


@pytest.fixture()
def slow_then_fast(monkeypatch):
    return install_fake_runtime(monkeypatch, ["slow", "fast"], ("slow", "fast", "absent"))


def test_comparison_names_the_fastest_backend(slow_then_fast, capsys):
    rows = compare_backends(_frames(6), model=object(), size=SIZE, warmup_frames=1)
    assert rows[0]["p50"] > rows[1]["p50"]
    out = capsys.readouterr().out
    assert "fastest: fast" in out and "fastest: slow" not in out


def test_unavailable_backend_says_why(slow_then_fast, capsys):
    compare_backends(_frames(3), model=object(), size=SIZE, warmup_frames=1)
    assert "absent (not installed)" in capsys.readouterr().out


def test_interrupted_comparison_keeps_what_was_measured(slow_then_fast, tmp_path, capsys):
    slow_then_fast.available_backends = lambda device=None: ["fast", "stopped", "slow"]
    with pytest.raises(KeyboardInterrupt):  # still raised: the launcher exits 130
        compare_backends(_frames(8), model=object(), size=SIZE, warmup_frames=1, report_dir=tmp_path)
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert "Ctrl+C" in saved["meta"]["cut_short"]
    fast, stopped = saved["rows"][:2]
    assert fast["frames"] == 7 and fast["cut_short"] is None
    assert stopped["frames"] == 3 and "Ctrl+C" in stopped["cut_short"]  # renders 2..4: warm-up was 1
    assert [r["backend"] for r in saved["rows"]] == ["fast", "stopped", "slow"]
    assert saved["rows"][2]["error"] == "not run: the comparison was stopped (Ctrl+C)"
    partial = json.loads((tmp_path / "stopped" / "report.json").read_text())
    assert partial["frames"]["measured"] == 3 and partial["run"]["cut_short"] is True
    out = capsys.readouterr().out
    assert "backend comparison" in out and "cut short" in out


def test_a_signal_wrapped_by_a_backend_library_still_stops_the_comparison(slow_then_fast, tmp_path, capsys):
    def wrapped(*args, **kwargs):  # onnxruntime's pybind11 start-up turns a signal into ImportError
        try:
            raise Terminated
        except Terminated as stop:
            raise ImportError("initialization failed") from stop

    slow_then_fast.Renderer = wrapped
    slow_then_fast.available_backends = lambda device=None: ["fast", "slow"]
    with pytest.raises(Terminated):
        compare_backends(_frames(3), model=object(), size=SIZE, warmup_frames=1, report_dir=tmp_path)
    rows = json.loads((tmp_path / "comparison.json").read_text())["rows"]
    assert rows[0]["error"] == "not measured: stopped by SIGTERM after 0 of 3 frames"
    assert rows[1]["error"] == "not run: the comparison was stopped (SIGTERM)"  # not tried after a SIGTERM
