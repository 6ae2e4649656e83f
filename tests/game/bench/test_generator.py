"""The benchmark: bench_path returns the documented keys; the CLI prints them as JSON on its last line."""

import importlib.util
import json

import pytest

from game.bench.generator import bench_path, main
from neural_render.checkpoint import save_generator
from neural_render.model import build_generator
from neural_render.runtime.common import compile_note

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



def _last_row(captured) -> dict:
    return json.loads(captured.out.strip().splitlines()[-1])


def test_cli_takes_the_preset_from_the_checkpoint(tmp_path, monkeypatch, capsys):
    """Without --preset the checkpoint's own is taken: a fixed cpu default would refuse a 'tiny' checkpoint
    for a preset nobody asked for."""
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    model = save_generator(build_generator("tiny"), tmp_path / "tiny.safetensors")
    argv = ["--model", str(model), "--res", "64x32", "--frames", "2", "--warmup", "0"]
    assert main(argv) == 0 and _last_row(capsys.readouterr())["preset"] == "tiny"
    assert main([*argv, "--preset", "cpu"]) == 2  # an explicit, different preset is still refused
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "pass --preset tiny" in err, err
    assert bench_path(res="64x32", frames=2, warmup=0, model=str(model))["preset"] == "tiny"


def test_help_says_where_the_preset_comes_from(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "default: the --model checkpoint's, cpu without --model" in out and "onnxruntime: nothing" in out


def test_compile_on_onnxruntime_is_reported_as_not_compiled(tmp_path, monkeypatch, capsys):
    """The row said "compile": true though ONNX Runtime compiles nothing."""
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    argv = ["--preset", "tiny", "--res", "64x32", "--backend", "onnxruntime", "--device", "cpu", "--frames", "2",
            "--warmup", "0", "--compile"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    row = _last_row(captured)
    assert row["compile"] is False and row["compiled"] is False
    notes = [line for line in captured.err.splitlines() if "--compile" in line]
    assert notes == ["note: --compile applies to the torch backend (and TensorRT's CUDA graphs) only; "
                     "onnxruntime runs uncompiled"], captured.err


@pytest.mark.parametrize("end_to_end", [False, True])
def test_every_row_says_whether_it_ran_compiled(end_to_end, tmp_path, monkeypatch):
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    for backend in ("onnxruntime", "torch"):
        row = bench_path("tiny", "64x32", backend, "cpu", frames=2, warmup=0, end_to_end=end_to_end, flops=False)
        assert row["compiled"] is False and row["compile"] is False, backend


def test_a_failed_torch_compile_is_reported_as_eager(tmp_path, monkeypatch, capsys):
    """torch.compile that fails falls back to eager: the row must not credit eager speed to compile."""
    def broken(*args, **kwargs):
        def run(*inputs):
            raise RuntimeError("no C++ toolchain")
        return run
    monkeypatch.setattr("torch.compile", broken)
    row = bench_path("tiny", "64x32", "torch", "cpu", compile=True, frames=2, warmup=0, flops=False)
    assert row["compile"] is False and row["compiled"] is False
    assert compile_note("--compile", True, row["compiled"], row["backend"]).startswith("note: --compile did not take with torch")


def test_a_cache_variable_naming_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    """NEURAL_DRIVE_CACHE=/etc/hostname is one line, not a FileExistsError traceback from the ONNX cache."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(blocker))
    assert main(["--preset", "tiny", "--res", "64x32", "--backend", "onnxruntime", "--frames", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: NEURAL_DRIVE_CACHE={blocker}: {blocker} is a file, not a folder; set "
                          f"NEURAL_DRIVE_CACHE to a writable folder") and err.count("\n") == 1, err


@pytest.mark.parametrize("cli", ["generator", "kernels"])
def test_an_unknown_compile_mode_is_a_flag_error(cli, capsys):
    """torch checks the mode at the first call: an inductor RuntimeError traceback after the build."""
    import importlib

    main = importlib.import_module(f"game.bench.{cli}").main
    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "tiny", "--res", "64x32", "--frames", "1", "--device", "cpu", "--compile", "bogus"])
    assert exit_info.value.code == 2
    assert "--compile bogus: not a torch.compile mode; name one of default" in capsys.readouterr().err


def test_bench_says_when_threads_did_not_apply(tmp_path, monkeypatch, capsys):
    from game.bench.generator import main

    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    assert main(["--preset", "tiny", "--res", "64x32", "--frames", "2", "--warmup", "0", "--end-to-end",
                 "--backend", "onnxruntime", "--threads", "1"]) == 0
    assert "note: --threads 1 applies to onnxruntime model-only timing" in capsys.readouterr().err


def test_several_backends_and_sizes_in_one_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    assert main(["--preset", "tiny", "--res", "64x32,128x64", "--backend", "openvino,onnxruntime", "--frames", "2",
                 "--warmup", "0", "--repeats", "2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert [(row["res"], row["backend"]) for row in result["rows"]] == [
        ("64x32", "openvino"), ("64x32", "onnxruntime"), ("128x64", "openvino"), ("128x64", "onnxruntime")]
    assert all(row["rounds"] == 2 and len(row["p50_ms_rounds"]) == 2 for row in result["rows"])
    assert set(result["speedups"]) == {"64x32", "128x64"} and result["speedups"]["64x32"]["openvino"] == 1.0
    assert sum(line.startswith("at 64x32: ") for line in out) == 1


def test_an_unknown_backend_in_a_list_is_a_flag_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "tiny", "--res", "64x32", "--backend", "openvino,onnx"])
    assert exit_info.value.code == 2 and "argument --backend: onnx: choose from auto" in capsys.readouterr().err
