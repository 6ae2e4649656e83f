"""launch.py's flags (game/startup/cli.py): defaults, --help with every key, bad values named by flag."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from game.keys.bindings import KEY_BINDINGS
from game.startup.cli import parse_args


def test_defaults_follow_manual_control():
    config = parse_args([])
    assert (config.source, config.host, config.port) == ("auto", "127.0.0.1", 2000)
    assert config.filter == "vehicle.*" and config.sync and not config.autopilot
    assert not parse_args(["--no-sync"]).sync
    assert config.res is None and config.backend == "auto" and config.precision == "fp32"
    assert config.model is None and not config.profile and not config.threaded


def test_values_are_parsed():
    config = parse_args(["--res", "96x48", "--window", "800x400", "--frames", "7", "--port", "2010",
                         "--device", "cuda:1", "--precision", "fp16", "--threaded", "--report", "r"])
    assert config.res == (96, 48) and config.window == (800, 400) and config.frames == 7
    assert config.port == 2010 and config.device == "cuda:1" and config.precision == "fp16"
    assert config.threaded and config.profile and config.report == Path("r")  # --report implies --profile


def test_replay_flag_selects_the_replay_source():
    config = parse_args(["--replay", "sessions/x", "--export", "out.mp4"])
    assert config.source == "replay" and config.replay == Path("sessions/x")
    assert config.export == Path("out.mp4")


def test_help_lists_every_key_and_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for keys, action in KEY_BINDINGS:
        assert keys in text and action in text
    for flag in ("--source", "--host", "--port", "--res", "--window", "--sync", "--autopilot", "--filter",
                 "--seed", "--model", "--preset", "--backend", "--device", "--precision", "--headless",
                 "--frames", "--screenshot", "--record", "--record-rgb", "--replay", "--export",
                 "--export-frames", "--profile", "--report", "--threaded"):
        assert flag in text


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--res", "12x3"], "--res"),
        (["--res", "wide"], "--res"),
        (["--res", "-64x32"], "--res"),  # was "expected one argument" (argparse read -64x32 as a flag)
        (["--window", "-800x400"], "--window"),
        (["--window", "800"], "--window"),
        (["--port", "70000"], "--port"),
        (["--port", "abc"], "--port"),
        (["--frames", "0"], "--frames"),
        (["--source", "moon"], "--source"),
        (["--source", "replay"], "--source"),
        (["--backend", "cuda"], "--backend"),
        (["--precision", "fp8"], "--precision"),
        (["--device", "gpu0"], "--device"),
        (["--export", "out.mp4"], "--export"),
        (["--export-frames", "frames"], "--export-frames"),
        (["--replay", "s", "--export", "out.avi"], "--export"),
        (["--replay", "s", "--source", "carla"], "--replay"),
        (["--preset", "huge"], "--preset"),
        (["--screenshot", "shot"], "--screenshot"),  # pygame would write a TGA under that name
        (["--screenshot", "shot.gif"], "--screenshot"),
        (["--seed", "-1"], "--seed"),  # was "procedural world: expected non-negative integer"
        (["--source", "carla", "--profile", "--backend", "all"], "--backend"),  # ran procedural frames
        (["--replay", "s", "--export", "o.mp4", "--frames", "3"], "--frames"),  # was ignored
        (["--replay", "s", "--export", "o.mp4", "--profile", "--backend", "all"], "--backend"),
        (["--replay", "s", "--export", "o.mp4", "--record", "r"], "--record"),  # dropped silently, made r/
        (["--replay", "s", "--export-frames", "f", "--screenshot", "x.png"], "--screenshot"),
        (["--replay", "s", "--export", "o.mp4", "--report", "r"], "--report"),
        (["--replay", "s", "--export", "o.mp4", "--profile"], "--profile"),
        (["--replay", "s", "--export", "o.mp4", "--threaded"], "--threaded"),
        (["--generation", "4"], "--generation"),
        (["--gamma", "0"], "--gamma"),
        (["--timeout", "-1"], "--timeout"),
        (["--timeout", "1e12"], "--timeout"),  # an OverflowError traceback in the camera wait
        (["--timeout", "1e-9"], "--timeout"),  # "time-out of 0ms": a live server taken for a dead one
    ],
)
def test_bad_values_name_the_flag(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert re.search(rf"argument (-\w/)?{flag}:", err), err
    # One line: the problem and where to look, not argparse's 12-line usage block above it.
    assert err.count("\n") == 1 and "usage:" not in err and "--help" in err
    assert "expected one argument" not in err


def test_manual_control_short_flags():
    # CARLA's manual_control.py users type -p PORT and -a.
    config = parse_args(["-p", "2010", "-a", "-s", "7", "-v"])
    assert config.port == 2010 and config.autopilot and config.seed == 7 and config.verbose
    assert parse_args(["--screenshot", "out/Shot.PNG"]).screenshot == Path("out/Shot.PNG")


def test_manual_control_ego_flags():
    config = parse_args([])  # today's behaviour: every generation; manual_control.py's default is "2"
    assert (config.rolename, config.generation, config.gamma, config.timeout) == ("hero", "All", 2.2, 10.0)
    config = parse_args(["--rolename", "ego_vehicle", "--generation", "all", "--gamma", "1.8", "--timeout", "3"])
    assert (config.rolename, config.generation, config.gamma, config.timeout) == ("ego_vehicle", "All", 1.8, 3.0)
    assert parse_args(["--generation", "3"]).generation == "3"


def test_help_names_the_manual_control_keys_that_do_nothing_here(capsys):
    from game.keys.bindings import NOT_BOUND

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    out = capsys.readouterr().out
    assert f"not bound (manual_control.py has them): {NOT_BOUND}" in out and "Ctrl+R" in NOT_BOUND


def test_backends_and_precisions_are_the_runtime_s():
    """cli.py writes them out so that --help need not import torch; they must not drift apart."""
    from game.startup.cli import BACKENDS, PRECISIONS
    from neural_render import runtime

    assert set(BACKENDS) == {"auto", "all", "remote", *runtime.BACKENDS} and PRECISIONS == tuple(runtime.PRECISIONS)


def test_mcap_and_live_flags(capsys, monkeypatch):
    config = parse_args(["--record-format", "mcap", "--live", "foxglove", "--live-port", "0"])
    assert (config.record_format, config.live, config.live_port) == ("mcap", "foxglove", 0)
    assert parse_args([]).live_port == 8765 and parse_args([]).record_format == "folder"
    for argv, said in ((["--live-port", "9000"], "needs --live foxglove"),
                       (["--live", "foxglove", "--live-port", "70000"], "must be a TCP port"),
                       (["--record-format", "bag"], "invalid choice")):
        with pytest.raises(SystemExit):
            parse_args(argv)
        assert said in capsys.readouterr().err
    import carla_bridge.session.format as session_format

    monkeypatch.setattr(session_format, "MCAP_MODULES", ("mcap", "no_such_module_here"))
    with pytest.raises(SystemExit):
        parse_args(["--record-format", "mcap"])
    assert "pip install 'neural-drive[mcap]'" in capsys.readouterr().err


def test_export_size_needs_an_export(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--export-size", "1920x1080"])
    assert "argument --export-size: needs --export OUT.mp4 or --export-frames DIR" in capsys.readouterr().err
    config = parse_args(["--replay", "s", "--export", "o.mp4", "--export-size", "1920x1080"])
    assert config.export_size == (1920, 1080)
