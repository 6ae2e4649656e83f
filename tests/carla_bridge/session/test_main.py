"""The check command, ``python -m carla_bridge.session``: each damaged record is named by file and line
in one line, never a traceback; a session without frames is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carla_bridge.core.frames import Control
from carla_bridge.session import ReplaySource, SessionFormatError, SessionRecorder
from carla_bridge.session.__main__ import main
from game.bench.workloads import synthetic_frame
from support.sessions import SIZE, drive, small_session


def test_the_check_command(tmp_path, capsys):
    path = small_session(tmp_path, n=3)
    assert main([str(path), "--load"]) == 0
    out = capsys.readouterr().out
    assert "3 frames, 96x48" in out and out.endswith("all 3 frames readable\n")  # the verdict, last
    assert main([str(path)]) == 0 and "readable" not in capsys.readouterr().out  # nothing was read
    (path / "labels" / "000002.png").write_bytes(b"\x89PNG broken")
    assert main([str(path)]) == 0  # files are only opened with --load
    assert main([str(path), "--load"]) == 1
    assert "000002.png: cannot be read" in capsys.readouterr().err


def test_a_folder_of_sessions_points_to_the_sessions_inside(tmp_path, capsys):
    root = tmp_path / "sessions"
    for stamp in ("20250101-120000", "20250102-090000"):  # as the R key names them
        with SessionRecorder(root / stamp, {}, size=SIZE, video=False) as rec:
            drive(rec, 1)
    assert main([str(root)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a folder of 2 sessions (20250101-120000, 20250102-090000)" in err, err
    assert f"e.g. {root / '20250102-090000'} (the latest)" in err

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
    path = _session(tmp_path)
    _edit_record(path, 1, **values)
    with pytest.raises(SessionFormatError) as error:
        list(ReplaySource(path))
    assert "frames.jsonl:2: " in str(error.value) and said in str(error.value), error.value
    assert main([str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and said in err, err


def test_label_ids_and_flow_no_recording_holds_are_found_by_load(tmp_path, capsys):
    """--load reads every file, so a bad tag id or flow is found there, not by the renderer mid-replay."""
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
    """A session launch.py --replay refuses is refused here too, not passed as '0 frames'."""
    SessionRecorder(tmp_path / "s", {}, size=SIZE, video=False).close()
    assert main([str(tmp_path / "s")]) == 1
    assert "holds no complete frame" in capsys.readouterr().err
