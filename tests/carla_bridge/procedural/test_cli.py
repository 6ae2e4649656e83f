"""The command lines of the procedural world (carla_bridge.procedural, carla_bridge.standin): a bad
--seed, --threads, --pedestrians or --strip is one line naming the flag, before any town is built."""

from __future__ import annotations

import os

import pytest

import carla_bridge.procedural
from carla_bridge.procedural.__main__ import main
from carla_bridge.standin.__main__ import parse_args as standin_args


class Built(Exception):
    """Raised by a stand-in world: the command went past its checks."""


def _no_world(*_args, **_kwargs):
    raise Built


@pytest.fixture()
def no_world(monkeypatch):
    monkeypatch.setattr(carla_bridge.procedural, "ProceduralWorld", _no_world)


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
    import numba

    with pytest.raises(Built):
        main(["--res", "64x32", "--benchmark", "--threads", str(numba.config.NUMBA_NUM_THREADS + 1)])
    err = capsys.readouterr().err
    assert err.startswith("note: --threads") and f"using {numba.config.NUMBA_NUM_THREADS}" in err, err


@pytest.mark.parametrize("argv, needle", [
    (["--seed", "-1"], "argument --seed: must be 0 or more"),
    (["--pedestrians", "-5"], "argument --pedestrians: must be in 0..500"),
])
def test_standin_flags_are_named(capsys, argv, needle):
    with pytest.raises(SystemExit) as exit_info:
        standin_args(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and needle in err and "WorldConfig" not in err, err
