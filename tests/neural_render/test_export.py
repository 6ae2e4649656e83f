"""ONNX export: opset 17 with a bilinear/border/align_corners GridSample, named I/O, torch vs ONNX
Runtime parity over a sequence with history carried, the export cache, and the CLI's JSON line."""

import json
import os

import onnx
import pytest
import torch
from support.runtime import tiny_generator_with_flow

from neural_render.checkpoint import save_generator
from neural_render.export import (INPUT_NAMES, OUTPUT_NAMES, PARITY_TOLERANCE, CacheError, cached_onnx, check_graph,
                                  check_parity, export_onnx, main, model_hash)
from neural_render.model import build_generator

W, H = 64, 32


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = build_generator("tiny").eval()
    # Non-zero flow head so the parity test covers the predicted flow and mask too.
    torch.nn.init.normal_(model.flow_branch.head.weight, std=0.05)
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "tiny.onnx", W, H)
    return model, path


def test_graph_attributes(exported):
    _, path = exported
    m = onnx.load(str(path))
    assert next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) == 17
    grids = [n for n in m.graph.node if n.op_type == "GridSample"]
    assert len(grids) == 1
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in grids[0].attribute}
    assert attrs["mode"] == b"bilinear" and attrs["padding_mode"] == b"border" and attrs["align_corners"] == 1
    assert [i.name for i in m.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in m.graph.output] == list(OUTPUT_NAMES)
    labels = m.graph.input[0].type.tensor_type
    assert labels.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in labels.shape.dim] == [1, 3, H, W]  # static shapes
    assert m.graph.output[1].type.tensor_type.elem_type == onnx.TensorProto.UINT8  # image_u8 on the device
    assert check_graph(path)["opset"] == 17


def test_parity_with_history(exported):
    model, path = exported
    assert check_parity(model, path, W, H, frames=8) <= 1e-3


def test_cache_reuses_and_repairs(exported, tmp_path):
    model, _ = exported
    p1 = cached_onnx(model, W, H, directory=tmp_path)
    mtime = p1.stat().st_mtime_ns
    assert cached_onnx(model, W, H, directory=tmp_path) == p1 and p1.stat().st_mtime_ns == mtime
    p1.write_bytes(b"corrupt")  # a broken cache file is exported again, not trusted
    p2 = cached_onnx(model, W, H, directory=tmp_path)
    assert p2 == p1 and check_graph(p2)["opset"] == 17
    other = build_generator("tiny")
    assert model_hash(other) != model_hash(model)
    assert cached_onnx(other, W, H, directory=tmp_path) != p1


def test_a_changed_forward_is_exported_again(exported, tmp_path, monkeypatch):
    """Same weights, new network maths (FORWARD_REVISION bumped): the cached graph must not be reused."""
    import neural_render.export as export

    model, _ = exported
    before = cached_onnx(model, W, H, directory=tmp_path)
    monkeypatch.setattr(export, "FORWARD_REVISION", export.FORWARD_REVISION + 1)
    assert cached_onnx(model, W, H, directory=tmp_path) != before


def test_bad_size(exported, tmp_path):
    with pytest.raises(ValueError, match="multiples"):
        export_onnx(exported[0], tmp_path / "x.onnx", 63, 32)


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
    """ORT used to refuse the fp32 inputs --check fed an fp16 graph (InvalidArgument)."""
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


def test_fp16_graph_for_strongly_typed_tensorrt(exported, tmp_path):
    """TensorRT 11 builds only strongly typed networks: the fp16 graph carries fp16 itself, while the
    warp grid, the flow input and the uint8 ends stay as they are."""
    path = export_onnx(exported[0], tmp_path / "tiny16.onnx", W, H, precision="fp16")
    m = onnx.load(str(path))
    types = {v.name: v.type.tensor_type.elem_type for v in [*m.graph.input, *m.graph.output]}
    assert types["prev_frames"] == types["image"] == onnx.TensorProto.FLOAT16
    assert types["flow"] == onnx.TensorProto.FLOAT and types["labels"] == onnx.TensorProto.UINT8
    assert check_graph(path)["grid_samples"][0]["mode"] == b"bilinear"


def test_cli_takes_the_preset_from_the_checkpoint(tmp_path, capsys):
    """--preset used to default to cpu, so a 'tiny' checkpoint was refused for a preset nobody asked for."""
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
