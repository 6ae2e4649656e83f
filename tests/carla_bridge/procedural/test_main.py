"""``python -m carla_bridge.procedural``: the benchmark and the strip, and a bad --seed, --threads or
--strip is one line naming the flag, before any town is built."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import imageio.v3 as iio
import numba
import pytest

import carla_bridge.procedural.__main__ as procedural_main
from carla_bridge.procedural.__main__ import main


class Built(Exception):
    """Raised by a stand-in world: the command went past its checks."""


def _no_world(*_args, **_kwargs):
    raise Built


@pytest.fixture()
def no_world(monkeypatch):
    monkeypatch.setattr(procedural_main, "ProceduralWorld", _no_world)


@pytest.mark.parametrize("argv, needle", [
    (["--benchmark", "--seed", "-3"], "argument --seed: must be 0 or more"),
    (["--strip", "x.png", "--seed", "-1"], "argument --seed: must be 0 or more"),
    (["--benchmark", "--threads", "0"], "argument --threads: must be at least 1"),
])
def test_bad_numbers_name_the_flag(no_world, capsys, argv, needle):
    with pytest.raises(SystemExit) as exit_info:
        main(["--res", "64x32", *argv])
    assert exit_info.value.code == 2 and needle in capsys.readouterr().err


@pytest.mark.parametrize("strip, needle", [
    ("{tmp}", "is a folder"),
    ("{tmp}/out", "must end in .png"),
    ("{tmp}/old.png", "--overwrite"),
    pytest.param("/proc/x.png", "not writable",
                 marks=pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs Linux's /proc")),
])
def test_a_bad_strip_is_refused_before_rendering(no_world, tmp_path, capsys, strip, needle):
    (tmp_path / "old.png").write_bytes(b"keep me")
    assert main(["--res", "64x32", "--strip", strip.format(tmp=tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --strip ") and err.count("\n") == 1 and needle in err, err
    assert os.listdir(tmp_path) == ["old.png"] and (tmp_path / "old.png").read_bytes() == b"keep me"


def test_a_good_strip_passes_the_checks(no_world, tmp_path):
    with pytest.raises(Built):
        main(["--res", "64x32", "--strip", str(tmp_path / "old.jpg")])
    (tmp_path / "old.png").write_bytes(b"old")
    with pytest.raises(Built):
        main(["--res", "64x32", "--strip", str(tmp_path / "old.png"), "--overwrite"])


def test_more_threads_than_numba_has_are_reported(no_world, capsys):
    with pytest.raises(Built):
        main(["--res", "64x32", "--benchmark", "--threads", str(numba.config.NUMBA_NUM_THREADS + 1)])
    err = capsys.readouterr().err
    assert err.startswith("note: --threads") and f"using {numba.config.NUMBA_NUM_THREADS}" in err, err


def test_benchmark_and_strip_commands(tmp_path):
    out = subprocess.run([sys.executable, "-m", "carla_bridge.procedural", "--benchmark", "--res", "64x32",
                          "--frames", "3"], capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["res"] == "64x32" and result["frames"] == 3
    for key in ("fps", "labels_only_fps", "ms_p50", "render_fps", "first_frame_s"):
        assert isinstance(result[key], (int, float)) and result[key] >= 0, key
    png = tmp_path / "strip.png"
    subprocess.run([sys.executable, "-m", "carla_bridge.procedural", "--strip", str(png), "--res", "64x32",
                    "--seed", "3"], capture_output=True, text=True, timeout=300, check=True)
    assert iio.imread(png).shape == (64, 4 * 64, 3)
    bad = subprocess.run([sys.executable, "-m", "carla_bridge.procedural", "--benchmark", "--res", "64"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--res" in bad.stderr
