"""The recording benchmark runs end to end on tiny frames and reports what it says."""

from __future__ import annotations

import pytest

from game.bench.recording import main


def test_bench_smoke(capsys):
    result = main(["--res", "64x32", "--frames", "6", "--blocks", "2", "--renderer", "none",
                   "--source", "synthetic", "--workload-ms", "0", "--no-video", "--writer", "thread"])
    assert result["writer"] == "thread" and result["frames"] == 6 and result["frames_written"] == 6
    assert result["errors"] == [] and len(result["close_s"]) == 2 and result["add_ms_median"] > 0
    assert "(thread writer, stand-in renderer)" in capsys.readouterr().out


@pytest.mark.parametrize("frames, blocks", [("0", "5"), ("3", "5"), ("6", "0")])
def test_fewer_frames_than_blocks_is_a_flag_error(frames, blocks, capsys):
    """It used to run one frame per block anyway and report figures for frames nobody asked for."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--frames", frames, "--blocks", blocks, "--source", "synthetic"])
    assert exit_info.value.code == 2 and "must be at least --blocks" in capsys.readouterr().err
