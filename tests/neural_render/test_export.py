"""neural_render.export, the export CLI: torch vs ONNX Runtime parity over a sequence with history
carried (fp32 and fp16 graphs), the JSON line, --out and --overwrite, the preset from the checkpoint, and
one-line errors for every bad flag."""

import json
import os

import pytest

from neural_render.checkpoint import save_generator
from neural_render.export import PARITY_TOLERANCE, check_parity, main
from neural_render.model import build_generator
from neural_render.runtime.onnx import CacheError, cached_onnx, check_graph, export_onnx
from support.runtime import tiny_generator_with_flow

W, H = 64, 32


def test_parity_with_history(tmp_path):
    model = tiny_generator_with_flow()  # non-zero flow head: parity covers the predicted flow and mask too
    path = export_onnx(model, tmp_path / "tiny.onnx", W, H)
    assert check_parity(model, path, W, H, frames=8) <= 1e-3


def test_bad_size(tmp_path, capsys):
    assert main(["--preset", "tiny", "--res", "63x32", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "multiples" in capsys.readouterr().err


def test_cli_check_prints_json_last(tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert main(["--preset", "tiny", "--res", f"{W}x{H}", "--check", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert result["path"] == str(out) and result["max_abs_diff"] <= 1e-3 and result["opset"] == 17
    assert result["tolerance"] == PARITY_TOLERANCE["fp32"]
    # No --model: random weights, said as loudly as the launcher's UNTRAINED banner.
    assert "warning: exporting an UNTRAINED tiny model" in captured.err


def test_cli_checks_an_fp16_export_against_fp32_torch(tmp_path, capsys):
    """--check feeds an fp16 graph fp16 inputs (ORT refuses fp32 ones with InvalidArgument) and compares
    the result with fp32 torch."""
    model = save_generator(tiny_generator_with_flow(), tmp_path / "tiny.safetensors")
    out = tmp_path / "half.onnx"
    argv = ["--preset", "tiny", "--model", str(model), "--res", f"{W}x{H}", "--precision", "fp16", "--check"]
    assert main([*argv, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert result["ok"] and result["tolerance"] == PARITY_TOLERANCE["fp16"] > PARITY_TOLERANCE["fp32"]
    assert 0 < result["max_abs_diff"] <= result["tolerance"]  # fp16 rounds, but stays close
    assert f"tolerance {PARITY_TOLERANCE['fp16']:g} for fp16" in captured.out and "UNTRAINED" not in captured.err


def test_cli_replaces_an_existing_out_only_with_overwrite(tmp_path, capsys):
    out = tmp_path / "kept.onnx"
    out.write_bytes(b"an earlier export")
    argv = ["--preset", "tiny", "--res", f"{W}x{H}", "--out", str(out)]
    assert main(argv) == 2 and out.read_bytes() == b"an earlier export"
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0 and check_graph(out)["opset"] == 17


@pytest.mark.parametrize("argv, needle", [
    (["--res", "60x32"], "size 60x32"),
    (["--model", "nowhere.safetensors"], "no such checkpoint"),
    (["--out", "{tmp}/file/x.onnx"], "--out"),
    (["--out", "{tmp}/file"], "already exists; pass --overwrite"),
    (["--out", "{tmp}"], "is a folder"),
    pytest.param(["--out", "/sys/x.onnx"], "--out /sys/x.onnx: its folder /sys: is not writable",
                 marks=pytest.mark.skipif(not os.path.isdir("/sys"), reason="needs Linux's /sys")),
])
def test_cli_errors_are_one_line(tmp_path, capsys, argv, needle):
    (tmp_path / "file").write_text("a file where the output folder should be")
    assert main(["--preset", "tiny", "--res", f"{W}x{H}", *[a.format(tmp=tmp_path) for a in argv]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err


def test_cli_takes_the_preset_from_the_checkpoint(tmp_path, capsys):
    """Without --preset the checkpoint's own preset is used, so a 'tiny' checkpoint is not refused for a
    preset nobody asked for."""
    model = save_generator(tiny_generator_with_flow(), tmp_path / "tiny.safetensors")
    out = tmp_path / "own.onnx"
    assert main(["--model", str(model), "--res", f"{W}x{H}", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["preset"] == "tiny"
    # An explicit --preset that differs from the file is still refused, in one line naming both.
    assert main(["--model", str(model), "--preset", "cpu", "--res", f"{W}x{H}", "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "'tiny'" in err and "'cpu'" in err, err


def test_help_says_where_the_preset_comes_from(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "the --model checkpoint's; cpu without --model" in out


def test_a_cache_variable_naming_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    """NEURAL_DRIVE_CACHE=/etc/hostname ended in a FileExistsError traceback from the cache's mkdir."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(blocker))
    with pytest.raises(CacheError, match=f"NEURAL_DRIVE_CACHE={blocker}: .* is a file, not a folder"):
        cached_onnx(build_generator("tiny"), W, H)
    assert main(["--preset", "tiny", "--res", f"{W}x{H}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: NEURAL_DRIVE_CACHE={blocker}: ") and err.count("\n") == 1, err


def test_export_out_naming_a_folder_is_refused(tmp_path, capsys, monkeypatch):
    """`--out exports/` wrote the ONNX to a file named 'exports'."""
    from neural_render.export import main

    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path / "cache"))
    out = f"{tmp_path / 'exports'}/"
    assert main(["--preset", "tiny", "--res", "64x32", "--out", out]) == 2
    assert "names a folder; name the .onnx file in it" in capsys.readouterr().err
    assert not (tmp_path / "exports").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
def test_export_out_that_is_a_pipe_is_left_alone(tmp_path, capsys, monkeypatch):
    """The atomic rename replaced it with the ONNX file (as root, `--out /dev/null` would replace the device)."""
    import stat

    from neural_render.export import main

    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path / "cache"))
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    assert main(["--preset", "tiny", "--res", "64x32", "--out", str(pipe), "--overwrite"]) == 2
    assert "is not a regular file (a device or a pipe)" in capsys.readouterr().err
    assert stat.S_ISFIFO(pipe.stat().st_mode)
