"""The benchmark: bench_path returns the documented keys; the CLI prints them as JSON on its last line."""

import importlib.util
import json

import pytest

from neural_render.bench import bench_path, main

KEYS = {"fps", "p50_ms", "p95_ms", "p99_ms", "params_m", "gflops", "backend", "device", "preset", "res"}


@pytest.mark.parametrize("backend,end_to_end", [("onnxruntime", False), ("torch", False), ("onnxruntime", True)])
def test_bench_path(backend, end_to_end, tmp_path, monkeypatch):
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    row = bench_path("tiny", "64x32", backend, "cpu", frames=3, warmup=1, end_to_end=end_to_end)
    assert KEYS <= set(row)
    assert row["backend"] == backend and row["preset"] == "tiny" and row["res"] == "64x32"
    assert row["fps"] > 0 and row["p50_ms"] <= row["p99_ms"] and row["gflops"] > 0


def test_cli_last_line_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    assert main(["--preset", "tiny", "--res", "64x32", "--backend", "onnxruntime", "--frames", "3"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert KEYS <= set(row) and row["device"] == "cpu"


@pytest.mark.parametrize("argv, needle", [
    (["--res", "60x32"], "size 60x32"),
    (["--model", "nowhere.safetensors"], "no such checkpoint"),
    pytest.param(["--backend", "tensorrt"], "TensorRT", marks=pytest.mark.skipif(
        importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")),
])
def test_cli_errors_are_one_line(argv, needle, capsys):
    assert main(["--preset", "tiny", "--res", "64x32", "--frames", "2", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err


def test_cli_refuses_cuda_figures_without_cuda(capsys, monkeypatch):
    """ONNX Runtime would fall back to the CPU and print CPU figures for a --device cuda question."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "tiny", "--res", "64x32", "--frames", "2", "--device", "cuda"])
    assert exit_info.value.code == 2 and "torch sees no CUDA GPU" in capsys.readouterr().err


def test_end_to_end_row_says_how_the_host_buffers_were_staged(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    row = bench_path("tiny", "64x32", "torch", "cpu", frames=2, warmup=1, end_to_end=True, pinned=False)
    assert row["pinned_staging"] is False and row["fps"] > 0
    # Pinned memory is a CUDA notion: asked for on the CPU, the buffers stay pageable and the row says so.
    assert bench_path("tiny", "64x32", "torch", "cpu", frames=2, warmup=1, end_to_end=True)["pinned_staging"] is False


def test_the_row_reports_the_precision_that_ran(tmp_path, monkeypatch, capsys):
    """onnxruntime on the CPU runs fp32 only: a row saying fp16 would credit fp32 speed to fp16."""
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    assert main(["--preset", "tiny", "--res", "64x32", "--backend", "onnxruntime", "--device", "cpu",
                 "--frames", "2", "--warmup", "0", "--dtype", "fp16"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["precision"] == "fp32"
    assert captured.err.startswith("note: --dtype fp16 is not available with onnxruntime"), captured.err


@pytest.mark.parametrize("argv, needle", [
    (["--device", "tpu"], "argument --device: must be cpu, cuda or cuda:N"),
    (["--warmup", "-3"], "argument --warmup: must be 0 or more"),
    (["--threads", "0"], "argument --threads: must be at least 1"),
])
def test_cli_refuses_bad_values_before_running(argv, needle, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "tiny", "--res", "64x32", "--frames", "2", *argv])
    assert exit_info.value.code == 2 and needle in capsys.readouterr().err

