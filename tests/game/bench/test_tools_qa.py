"""A user-level QA pass over the tool command lines (session check and bench, stand-in, export, bench,
perf_profile, perf_suite): each bad input is one line naming it and what to do, never a traceback or
figures of something that did not run; damaged session records are named by file and line."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from carla_bridge.core.frames import Control
from carla_bridge.session import ReplaySource, SessionFormatError, SessionRecorder
from game.bench.workloads import synthetic_frame

SIZE = (96, 48)


def _session(tmp_path: Path, n: int = 3) -> Path:
    path = tmp_path / "s"
    with SessionRecorder(path, {}, size=SIZE, video=False) as rec:
        for i in range(n):
            frame = synthetic_frame(i, SIZE)
            rec.add(frame, Control(), frame.rgb, {})
    return path


def _edit_record(path: Path, line: int, **values) -> None:
    lines = (path / "frames.jsonl").read_text().splitlines()
    lines[line] = json.dumps({**json.loads(lines[line]), **values})
    (path / "frames.jsonl").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("values, said", [
    ({"files": None}, "'files' must be a list of file kinds"),           # TypeError: not iterable
    ({"files": [["labels"]]}, "'files' must be a list of file kinds"),   # TypeError: unhashable
    ({"files": []}, "lacks 'labels'"),                                   # KeyError at the frame
    ({"position": 1.0}, "'position' must be a whole number, got 1.0"),   # ValueError in a format code
    ({"time_s": "abc"}, "'time_s' must be a finite number, got 'abc'"),  # float('abc')
    ({"index": None}, "'index' must be a whole number, got None"),       # int(None)
    ({"control": {"throttle": 5}}, "bad 'control': Control.throttle must lie in [0, 1], got 5"),
    ({"control": None}, "'control' must be a JSON object, got None"),
    ({"control": [1]}, "'control' must be a JSON object"),               # read as Control(): silently
    ({"cut": "no"}, "'cut' must be true or false, got 'no'"),           # bool('no') is True: silently
])
def test_a_damaged_record_is_named_by_file_and_line(tmp_path, capsys, values, said):
    from carla_bridge.session.__main__ import main

    path = _session(tmp_path)
    _edit_record(path, 1, **values)
    with pytest.raises(SessionFormatError) as error:
        list(ReplaySource(path))
    assert "frames.jsonl:2: " in str(error.value) and said in str(error.value), error.value
    assert main([str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and said in err, err


def test_label_ids_and_flow_no_recording_holds_are_found_by_load(tmp_path, capsys):
    """They passed --load and the replay then ended in the renderer's ValueError traceback."""
    from PIL import Image

    from carla_bridge.session.__main__ import main

    path = _session(tmp_path)
    labels = np.asarray(Image.open(path / "labels" / "000001.png")).copy()
    labels[0, 0] = 99
    Image.fromarray(labels).save(path / "labels" / "000001.png")
    assert main([str(path), "--load"]) == 1
    assert "000001.png: holds tag id 99, outside 0..28" in capsys.readouterr().err
    path = _session(tmp_path / "b")
    flow = np.load(path / "flow" / "000002.npy")
    flow[3, 4, 1] = np.nan
    np.save(path / "flow" / "000002.npy", flow)
    with pytest.raises(SessionFormatError, match=r"000002.npy: holds NaN or infinite flow"):
        list(ReplaySource(path))


@pytest.mark.parametrize("damage, said", [
    (lambda p: (p / "session.json").write_text("[" * 100_000 + "]" * 100_000), "cannot be read as JSON"),
    (lambda p: _edit_meta(p, size=[True, SIZE[1]]), "'size' must be [width, height] in pixels"),
])
def test_odd_session_json_is_a_format_error(tmp_path, damage, said):
    path = _session(tmp_path)
    damage(path)
    with pytest.raises(SessionFormatError) as error:  # RecursionError; a 1-pixel-wide session
        ReplaySource(path)
    assert said in str(error.value)


def _edit_meta(path: Path, **values) -> None:
    meta = json.loads((path / "session.json").read_text())
    (path / "session.json").write_text(json.dumps({**meta, **values}))


def test_the_check_command_refuses_a_session_without_frames(tmp_path, capsys):
    """It said '0 frames' with exit status 0, for a session that launch.py --replay refuses."""
    from carla_bridge.session.__main__ import main

    SessionRecorder(tmp_path / "s", {}, size=SIZE, video=False).close()
    assert main([str(tmp_path / "s")]) == 1
    assert "holds no complete frame" in capsys.readouterr().err


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


def test_standin_port_in_use_names_both_ports(capsys):
    """The RPC port in use ended in 'cannot join thread before it is started' (a traceback)."""
    from carla_bridge.standin.__main__ import main

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert main(["--port", str(port), "--res", "32x16", "--pedestrians", "0", "--log-level", "ERROR"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"cannot listen on 127.0.0.1:{port}" in err, err
    assert f"ports {port} (rpc) and {port + 1} (streaming)" in err and "pass another --port" in err


def test_export_out_naming_a_folder_is_refused(tmp_path, capsys, monkeypatch):
    """`--out exports/` wrote the ONNX to a file named 'exports'."""
    from neural_render.export import main

    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path / "cache"))
    out = f"{tmp_path / 'exports'}/"
    assert main(["--preset", "tiny", "--res", "64x32", "--out", out]) == 2
    assert "names a folder; name the .onnx file in it" in capsys.readouterr().err
    assert not (tmp_path / "exports").exists()


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


@pytest.mark.parametrize("argv, said", [
    (["--res", "abc"], "--res 'abc': expected WIDTHxHEIGHT"),
    (["--res", "60x32"], "size 60x32"),
    (["--device", "tpu"], "argument --device: must be cpu, cuda or cuda:N"),
    (["--top", "0"], "argument --top: must be at least 1"),
    pytest.param(["--device", "cuda"], "--device cuda: torch sees no CUDA GPU",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")),
])
def test_perf_profile_flag_errors(argv, said, capsys):
    from game.bench.kernels import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "tiny", "--res", "64x32", "--frames", "1", *argv])
    assert exit_info.value.code == 2 and said in capsys.readouterr().err


@pytest.mark.parametrize("argv, said", [
    (["--res", "64x32", "abc"], "--res 'abc': expected WIDTHxHEIGHT"),  # an error row per path, exit 0
    (["--res", "60x32"], "size 60x32"),
    (["--budget-s", "nan"], "argument --budget-s: must be 0 or more, got nan"),  # never ran out
    (["--budget-s", "-1"], "argument --budget-s: must be 0 or more"),
    (["--model", "nowhere.safetensors"], "no such checkpoint"),
    pytest.param(["--device", "cuda"], "--device cuda: torch sees no CUDA GPU",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")),
])
def test_perf_suite_flag_errors_before_measuring(tmp_path, argv, said, capsys):
    from game.bench.suite import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "tiny", "--res", "64x32", "--frames", "1", "--out", str(tmp_path / "p.json"), *argv])
    assert exit_info.value.code == 2 and said in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


def test_perf_suite_takes_the_checkpoints_preset(tmp_path):
    """Without --preset the 'gpu' default met a 'cpu' or 'tiny' checkpoint: an error row on every path."""
    import argparse

    from neural_render.checkpoint import save_generator
    from neural_render.model import build_generator
    from game.bench.suite import _flag_problem

    model = save_generator(build_generator("tiny"), tmp_path / "tiny.safetensors")
    args = argparse.Namespace(device="cpu", model=str(model), preset=None, res=["64x32"])
    assert _flag_problem(args) is None and args.preset == "tiny"
    args = argparse.Namespace(device="cpu", model=None, preset=None, res=["1024x512"])
    assert _flag_problem(args) is None and args.preset == "gpu"


def test_perf_suite_keeps_an_existing_report_and_fails_when_nothing_ran(tmp_path, monkeypatch, capsys):
    from game.bench import suite as perf_suite

    out = tmp_path / "perf.json"
    out.write_text('{"published": true}')
    argv = ["--preset", "tiny", "--res", "64x32", "--device", "cpu", "--frames", "1", "--no-profile",
            "--out", str(out)]
    assert perf_suite.main(argv) == 2
    assert "already exists (an earlier report); pass --overwrite" in capsys.readouterr().err
    assert out.read_text() == '{"published": true}'

    def broken(**kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(perf_suite, "bench_path", lambda *a, **k: broken())
    assert perf_suite.main([*argv, "--overwrite"]) == 1  # it exited 0 with "measured": 0
    assert "no path could be measured; the first failure: RuntimeError: out of memory" in capsys.readouterr().err
    assert json.loads(out.read_text())["results"]


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
