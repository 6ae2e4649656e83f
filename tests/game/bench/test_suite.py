"""The one-run GPU measurement script, dry-run on the CPU at a tiny size: every path gets a row
(measured, or skipped with its reason), end-to-end rows split the frame into Renderer stages, the
profile names real operators, and a spent budget still leaves a valid file."""

import json
import os

import pytest
import torch

from game.bench.suite import PATHS, main
from neural_render.runtime.common import STAGES


@pytest.fixture()
def suite_report(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))

    def run(*extra):
        out = tmp_path / "perf.json"
        assert main(["--preset", "tiny", "--res", "64x32", "--device", "cpu", "--frames", "3", "--out", str(out),
                     *extra]) == 0
        return json.loads(out.read_text())
    return run


def test_every_path_measured_or_skipped_with_a_reason(suite_report):
    report = suite_report()
    rows = {r["path"]: r for r in report["results"]}
    assert set(rows) == {name for name, _ in PATHS}
    assert report["machine"]["cuda_available"] is False and report["device"] == "cpu"
    eager = rows["torch-eager-fp32"]
    assert eager["fps"] > 0 and eager["compiled"] is False and eager["p50_ms"] <= eager["p99_ms"]
    assert "CUDA" in rows["torch-compile-cudagraphs-fp16"]["skipped"]
    assert "tensorrt" in rows["tensorrt-fp16"]["skipped"]
    assert rows["onnxruntime-fp32"]["providers"][-1] == "CPUExecutionProvider"
    stages = rows["renderer-e2e-eager-fp16"]["stages_p50_ms"]
    assert set(stages) == set(STAGES) and all(v >= 0 for v in stages.values())
    assert sum(stages.values()) <= rows["renderer-e2e-eager-fp16"]["p99_ms"] * 1.05  # stages lie inside a frame


def test_profile_lists_the_operators_of_a_render(suite_report):
    profile = suite_report()["profile"]
    names = [row["name"] for row in profile["top_cpu"]]
    assert profile["device"] == "cpu" and profile["top_device"] == []
    assert any("conv" in n for n in names), names  # the generator is convolutions: they must show up
    assert all(row["calls_per_frame"] > 0 for row in profile["top_cpu"])


def test_spent_budget_skips_the_rest_but_writes_the_file(suite_report):
    report = suite_report("--budget-s", "0", "--no-profile")
    skipped = [r for r in report["results"] if "budget" in r.get("skipped", "")]
    assert len(skipped) >= len(PATHS) - 1  # the first path starts before the clock is checked again
    assert "profile" not in report and report["wall_s"] >= 0


def test_zero_frames_is_a_flag_error(tmp_path, capsys):
    from game.bench.kernels import main as profile_main

    suite = lambda: main(["--frames", "0", "--out", str(tmp_path / "p.json")])  # noqa: E731
    for cli in (suite, lambda: profile_main(["--frames", "0"])):
        with pytest.raises(SystemExit) as exit_info:
            cli()
        # the shared argparse type, as bench and launch.py: one line naming the flag and the value
        assert exit_info.value.code == 2 and "argument --frames: must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("out", [
    "{tmp}/file/p.json",
    # root passes os.access there: the write would fail with a traceback after every measurement
    pytest.param("/sys/p.json", marks=pytest.mark.skipif(not os.path.isdir("/sys"), reason="needs Linux's /sys")),
])
def test_an_unwritable_out_is_refused_before_measuring(tmp_path, capsys, out):
    (tmp_path / "file").write_text("a file where the output folder should be")
    out = out.format(tmp=tmp_path)
    assert main(["--preset", "tiny", "--res", "64x32", "--device", "cpu", "--frames", "3", "--out", out]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: --out {out}: ") and captured.err.count("\n") == 1, captured.err
    assert captured.out == ""  # no path was measured


def test_max_autotune_runs_last_after_the_profile_is_saved(tmp_path, monkeypatch):
    """Its autotuning takes minutes on a cold cache (it outlasted a 390 s GPU run): a lease cut short
    there must already hold every other row and the profile."""
    import game.bench.suite as suite

    out = tmp_path / "perf.json"
    order = []

    def fake_bench_path(**kwargs):
        order.append((kwargs.get("compile"), kwargs["res"]))
        if kwargs.get("compile") == "max-autotune":
            saved = json.loads(out.read_text())
            assert "profile" in saved and len(saved["results"]) == len(order) - 1
        return {"fps": 1.0}

    monkeypatch.setattr(suite, "_skip_reason", lambda kwargs, device: None)  # every path "runs" on the CPU
    monkeypatch.setattr(suite, "bench_path", fake_bench_path)
    monkeypatch.setattr(suite, "run_profile", lambda *args: order.append("profile") or {"error": "not run here"})
    assert main(["--preset", "tiny", "--res", "64x32", "128x64", "--device", "cpu", "--frames", "1",
                 "--out", str(out)]) == 0
    assert order[-2:] == ["profile", ("max-autotune", "64x32")]
    assert ("reduce-overhead", "128x64") in order  # the large size's paths came before it
    assert len(json.loads(out.read_text())["results"]) == len(order) - 1


@pytest.mark.parametrize("argv, said", [
    # an error row per path, exit 0
    (["--res", "64x32", "abc"], "--res must look like WIDTHxHEIGHT (e.g. 512x256), got 'abc'"),
    (["--res", "60x32"], "size 60x32"),
    (["--budget-s", "nan"], "argument --budget-s: must be 0 or more, got nan"),  # never ran out
    (["--budget-s", "-1"], "argument --budget-s: must be 0 or more"),
    (["--model", "nowhere.safetensors"], "no such checkpoint"),
    pytest.param(["--device", "cuda"], "--device cuda: torch sees no CUDA GPU",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")),
])
def test_perf_suite_flag_errors_before_measuring(tmp_path, argv, said, capsys):
    from game.bench.suite import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "tiny", "--res", "64x32", "--frames", "1", "--out", str(tmp_path / "p.json"), *argv])
    assert exit_info.value.code == 2 and said in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


def test_perf_suite_takes_the_checkpoints_preset(tmp_path):
    """Without --preset the 'gpu' default met a 'cpu' or 'tiny' checkpoint: an error row on every path."""
    import argparse

    from game.bench.suite import _flag_problem
    from neural_render.checkpoint import save_generator
    from neural_render.model import build_generator

    model = save_generator(build_generator("tiny"), tmp_path / "tiny.safetensors")
    args = argparse.Namespace(device="cpu", model=str(model), preset=None, res=["64x32"])
    assert _flag_problem(args) is None and args.preset == "tiny"
    args = argparse.Namespace(device="cpu", model=None, preset=None, res=["1024x512"])
    assert _flag_problem(args) is None and args.preset == "gpu"


def test_perf_suite_keeps_an_existing_report_and_fails_when_nothing_ran(tmp_path, monkeypatch, capsys):
    from game.bench import suite as perf_suite

    out = tmp_path / "perf.json"
    out.write_text('{"published": true}')
    argv = ["--preset", "tiny", "--res", "64x32", "--device", "cpu", "--frames", "1", "--no-profile",
            "--out", str(out)]
    assert perf_suite.main(argv) == 2
    assert "already exists (an earlier report); pass --overwrite" in capsys.readouterr().err
    assert out.read_text() == '{"published": true}'

    def broken(**kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(perf_suite, "bench_path", lambda *a, **k: broken())
    assert perf_suite.main([*argv, "--overwrite"]) == 1  # it exited 0 with "measured": 0
    assert "no path could be measured; the first failure: RuntimeError: out of memory" in capsys.readouterr().err
    assert json.loads(out.read_text())["results"]
