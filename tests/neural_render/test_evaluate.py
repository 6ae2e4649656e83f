"""evaluate --strip: a bad path is refused before any drive; the table and JSON come out before the
strip is written, so a late failure loses no figure; a failed write leaves no stray file."""

from __future__ import annotations

import json
import os

import pytest

import neural_render.evaluate as evaluate
from neural_render.checkpoint import save_generator
from neural_render.evaluate import main
from support.runtime import tiny_generator_with_flow


@pytest.fixture()
def checkpoint(tmp_path):
    return save_generator(tiny_generator_with_flow(), tmp_path / "tiny.safetensors")


def _run(checkpoint, *extra):
    return main(["--model", str(checkpoint), "--res", "64x32", "--frames", "3", "--seeds", "1", "--no-progress",
                 *extra])


def _no_drive(*_args, **_kwargs):
    raise AssertionError("a drive was evaluated before the bad --strip was refused")


@pytest.mark.parametrize("strip, needle", [
    ("{tmp}", "is a folder"),
    ("{tmp}/out", "must end in .png"),
    ("{tmp}/old.png", "--overwrite"),
    ("{tmp}/file/strip.png", "is a file, not a folder"),
    pytest.param("/proc/strip.png", "not writable",
                 marks=pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs Linux's /proc")),
])
def test_a_bad_strip_is_refused_before_evaluating(checkpoint, tmp_path, capsys, monkeypatch, strip, needle):
    monkeypatch.setattr("neural_render.evaluate.evaluate_seed", _no_drive)
    (tmp_path / "old.png").write_bytes(b"keep me")
    (tmp_path / "file").write_text("a file where the folder should be")
    before = sorted(os.listdir(tmp_path))
    assert _run(checkpoint, "--strip", strip.format(tmp=tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --strip ") and err.count("\n") == 1 and needle in err, err
    assert sorted(os.listdir(tmp_path)) == before and (tmp_path / "old.png").read_bytes() == b"keep me"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
def test_a_pipe_named_as_strip_is_left_a_pipe_even_with_overwrite(checkpoint, tmp_path, capsys, monkeypatch):
    """The atomic rename replaced a pipe (or, as root, a device) with a regular file."""
    import stat

    monkeypatch.setattr("neural_render.evaluate.evaluate_seed", _no_drive)
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    assert _run(checkpoint, "--strip", str(pipe), "--overwrite") == 2
    assert "is not a regular file" in capsys.readouterr().err
    assert stat.S_ISFIFO(pipe.stat().st_mode)


def test_the_figures_come_out_before_the_strip_is_written(checkpoint, tmp_path, capsys, monkeypatch):
    def disk_full(path, image):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(evaluate, "write_png", disk_full)
    assert _run(checkpoint, "--strip", str(tmp_path / "strip.png")) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["frames"] == 3  # the JSON line was printed
    assert captured.err.startswith("error: --strip ") and "No space left" in captured.err, captured.err


def test_overwrite_replaces_the_strip(checkpoint, tmp_path, capsys):
    strip = tmp_path / "strip.png"
    strip.write_bytes(b"old")
    assert _run(checkpoint, "--strip", str(strip), "--overwrite") == 0
    assert strip.read_bytes().startswith(b"\x89PNG") and sorted(os.listdir(tmp_path)) == ["strip.png", "tiny.safetensors"]
    json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # still the last line of stdout


def test_a_weather_out_of_range_names_the_flag(checkpoint, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _run(checkpoint, "--weather", "99")
    assert exit_info.value.code == 2 and "argument --weather" in capsys.readouterr().err


def test_the_json_holds_the_blur_aware_metrics_per_level_and_quarter(checkpoint, capsys):
    assert main(["--model", str(checkpoint), "--res", "64x32", "--frames", "8", "--seeds", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    for key in ("swd", "swd_framewise", "temporal_residual", "temporal_residual_framewise"):
        assert result[key] > 0, key
    assert len(result["swd_by_level"]) == 2  # 64x32: the image and its 32x16 half
    assert result["swd"] == pytest.approx(sum(result["swd_by_level"]) / 2, abs=1e-5)
    assert len(result["swd_by_quarter"]) == 4 and all(v > 0 for v in result["swd_by_quarter"])
    assert any(line.startswith("SWD by quarter") for line in out)
