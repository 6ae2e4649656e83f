"""The recording benchmark (`python -m game.bench recording`) runs end to end on tiny frames and reports
what it says; bad flags are one-line flag errors before any frame."""

from __future__ import annotations

import json

import pytest

from game.bench.recording import main


def test_bench_smoke(capsys):
    assert main(["--res", "64x32", "--frames", "6", "--blocks", "2", "--renderer", "none",
                 "--source", "synthetic", "--workload-ms", "0", "--no-video"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    writer = "thread"
    assert result["writer"] == writer and result["frames"] == 6 and result["frames_written"] == 6
    assert result["errors"] == [] and len(result["ready_s"]) == 2 and result["add_ms_median"] > 0
    assert f"({writer} writer, stand-in renderer)" in out


@pytest.mark.parametrize("frames, blocks", [("0", "5"), ("3", "5"), ("6", "0")])
def test_fewer_frames_than_blocks_is_a_flag_error(frames, blocks, capsys):
    """One frame per block anyway would report figures for frames nobody asked for."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--frames", frames, "--blocks", blocks, "--source", "synthetic"])
    assert exit_info.value.code == 2 and "must be at least --blocks" in capsys.readouterr().err


@pytest.mark.parametrize("argv, said", [
    (["--res", "abc"], "--res must look like WIDTHxHEIGHT"),
    (["--renderer", "foo"], "argument --renderer: 'foo' is none of auto, none"),
    (["--renderer", "nowhere.safetensors"], "argument --renderer: nowhere.safetensors: no such file"),
    (["--backend", "bogus"], "argument --backend: invalid choice"),
    (["--seed", "-1"], "argument --seed: must be 0 or more"),
    (["--out", "{tmp}/file"], "is a file, not a folder; pass another folder"),
    (["--out", "{tmp}/done"], "already holds block0 of an earlier run"),
])
def test_session_bench_flag_errors(tmp_path, capsys, argv, said):
    """Tracebacks, and an --out that could take no session printed the overhead of recording nothing."""
    from game.bench.recording import main

    (tmp_path / "file").write_text("a file")
    (tmp_path / "done" / "block0").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_info:
        main(["--frames", "2", "--blocks", "1", "--source", "synthetic", "--renderer", "none", "--res", "64x32",
              *[a.format(tmp=tmp_path) for a in argv]])
    assert exit_info.value.code == 2 and said in capsys.readouterr().err


def test_session_bench_bad_checkpoint_is_one_line(tmp_path, capsys):
    from game.bench.recording import main

    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as exit_info:
        main(["--frames", "2", "--blocks", "1", "--source", "synthetic", "--renderer",
              str(tmp_path / "bad.safetensors"), "--res", "64x32"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err


def test_both_formats_side_by_side(capsys):
    assert main(["--res", "64x32", "--frames", "4", "--blocks", "2", "--renderer", "none",
                 "--source", "synthetic", "--workload-ms", "0", "--no-video", "--record-format", "both"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert set(result["by_format"]) == {"folder", "mcap"}
    assert result["by_format"]["mcap"]["frames_written"] == 4 and result["frames_written"] == 4  # folder's
    assert "folder: median frame" in out and "mcap: median frame" in out
