"""Reading a session folder back: a cut-off last line is tolerated with a note, everything else wrong
with a folder is a SessionFormatError naming the file (and line) and the problem."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carla_bridge.core.frames import Control
from carla_bridge.session import FORMAT_VERSION, ReplaySource, SessionFormatError, SessionRecorder, open_session
from carla_bridge.session.__main__ import main as check_session
from game.bench.workloads import synthetic_frame
from support.sessions import SIZE, small_session


def _edit_meta(path: Path, **values) -> None:
    meta = json.loads((path / "session.json").read_text())
    (path / "session.json").write_text(json.dumps({**meta, **values}))


def test_a_truncated_last_line_is_ignored_with_a_note(tmp_path):
    path = tmp_path / "cut"
    with SessionRecorder(path, {}, size=SIZE, video=False) as rec:
        for i in range(3):
            rec.add(synthetic_frame(i, SIZE), Control(), None, {})
    with open(path / "frames.jsonl", "ab") as handle:
        handle.write(b'{"position":3,"index":3,"time_s":0.1')  # killed while writing this line
    replay = ReplaySource(path)
    assert len(replay) == 3
    assert len(replay.notes) == 1 and "line 4 is incomplete" in replay.notes[0]
    # A broken line in the middle is not a crash artefact: it is an error naming the line.
    text = (path / "frames.jsonl").read_text().splitlines()
    (path / "frames.jsonl").write_text("\n".join([text[0], "{oops", text[1]]) + "\n")
    with pytest.raises(SessionFormatError, match=r"frames.jsonl:2: not a JSON record"):
        open_session(path)


def test_a_frames_file_cut_short_after_a_clean_close_is_warned_about(tmp_path):
    # Without the note the replay of 2 of 4 lines would say "all 2 recorded frames were played".
    path = tmp_path / "cut"
    with SessionRecorder(path, {}, size=SIZE, video=False) as rec:
        for i in range(4):
            rec.add(synthetic_frame(i, SIZE), Control(), None, {})
    lines = (path / "frames.jsonl").read_text().splitlines(keepends=True)
    (path / "frames.jsonl").write_text("".join(lines[:2]))
    replay = ReplaySource(path)
    assert len(replay) == 2
    assert replay.notes == ["frames.jsonl holds 2 frames but session.json says the recording closed with 4 "
                            "(frames.jsonl was cut short since); replaying the 2"]
    # After a crash session.json says closed: false and frames.jsonl is the truth: nothing to warn about.
    meta = json.loads((path / "session.json").read_text())
    (path / "session.json").write_text(json.dumps({**meta, "closed": False}))
    assert ReplaySource(path).notes == []


def test_a_null_delta_s_is_accepted(tmp_path):
    path = small_session(tmp_path)
    _edit_meta(path, delta_s=None)  # what a source without a fixed step records
    assert len(list(ReplaySource(path))) == 2


def test_not_a_session(tmp_path):
    with pytest.raises(SessionFormatError, match="no such folder"):
        ReplaySource(tmp_path / "nowhere")
    with pytest.raises(SessionFormatError, match="session.json is missing"):
        ReplaySource(tmp_path)
    (tmp_path / "session.json").write_text("{}")
    with pytest.raises(SessionFormatError, match=r"a file; pass the session's folder"):
        ReplaySource(tmp_path / "session.json")


def test_future_format_version(tmp_path):
    path = small_session(tmp_path)
    meta = json.loads((path / "session.json").read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (path / "session.json").write_text(json.dumps(meta))
    with pytest.raises(SessionFormatError, match=rf"version {FORMAT_VERSION + 1} is newer"):
        ReplaySource(path)


def _edit_line(path: Path, number: int, text: str | None = None, **values) -> None:
    """Replace line ``number`` (1-based) of frames.jsonl by ``text``, or by its record updated with ``values``."""
    lines = (path / "frames.jsonl").read_text().splitlines()
    lines[number - 1] = text if text is not None else json.dumps({**json.loads(lines[number - 1]), **values})
    (path / "frames.jsonl").write_text("\n".join(lines) + "\n")


def _cut_line(path: Path, number: int, keep: int) -> None:
    """Line ``number`` of frames.jsonl cut to ``keep`` characters, the lines after it kept."""
    _edit_line(path, number, (path / "frames.jsonl").read_text().splitlines()[number - 1][:keep])


def _save_png(path: Path, name: str, array: np.ndarray) -> None:
    Image.fromarray(array).save(path / name)


def _cut(path: Path, name: str, keep: int) -> None:
    (path / name).write_bytes((path / name).read_bytes()[:keep])


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and modification time: what 'nothing written' compares."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


# The fault suite's 25 corrupt sessions (README, Reliability): each is rejected naming the file (and the
# line) and what is wrong. Files are addressed by position and a fixed list of kinds, so a path-like name
# in a record is an unknown kind, never a path that is opened.
@pytest.mark.fault
@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "labels" / "000001.png").unlink(), r"000001.png is missing .*line 2"),
    (lambda p: (p / "frames.jsonl").unlink(), r"frames.jsonl is missing"),
    (lambda p: (p / "session.json").write_text("{not json"), r"session.json: cannot be read as JSON"),
    (lambda p: (p / "flow" / "000000.npy").write_bytes(b"garbage"), r"000000.npy: is corrupt or truncated"),
    (lambda p: (p / "session.json").write_text('{"format_version": 1, "size": [1]}'), r"'size'"),
    # a damaged rate: a traceback ('fast') or ffmpeg's "Broken pipe" and raw log (0, -5) at --export
    (lambda p: _edit_meta(p, fps="fast"), r"session.json: 'fps' must be a positive number, got 'fast'$"),
    (lambda p: _edit_meta(p, fps=0), r"'fps' must be a positive number, got 0$"),
    (lambda p: _edit_meta(p, fps=-5), r"'fps' must be a positive number, got -5$"),
    (lambda p: _edit_meta(p, fps=True), r"'fps' must be a positive number, got True$"),
    (lambda p: _edit_meta(p, delta_s=float("nan")), r"'delta_s' must be a positive number, got nan$"),
    (lambda p: (p / "session.json").write_text("[]"), r"session.json: expected a JSON object, got list"),
    (lambda p: (p / "session.json").write_text(""), r"session.json: cannot be read as JSON"),
    (lambda p: (p / "session.json").write_bytes(b"\xff\xfe\x00"), r"session.json: cannot be read as JSON"),
    (lambda p: _edit_meta(p, format_version="1"), r"'format_version' must be an integer, got '1'"),
    (lambda p: _edit_meta(p, format_version=0), r"'format_version' must be >= 1, got 0"),
    # a line cut short that is not the last one is no crash artefact
    (lambda p: _cut_line(p, 1, 40), r"frames.jsonl:1: not a JSON record"),
    (lambda p: _edit_line(p, 1, "[1, 2]"), r"frames.jsonl:1: expected a JSON object"),
    (lambda p: _edit_line(p, 1, '{"position": 0}'), r"frames.jsonl:1: record lacks index, time_s, ego"),
    (lambda p: _edit_line(p, 2, position=5), r"frames.jsonl:2: position 5 out of order \(expected 1\)"),
    (lambda p: _edit_line(p, 2, files=["labels", "../../session.json"]),
     r"frames.jsonl:2: unknown file kind '../../session.json'"),
    (lambda p: _edit_line(p, 2, position="/etc/passwd"), r"'position' must be a whole number, got '/etc/passwd'"),
    (lambda p: _save_png(p, "labels/000001.png", np.zeros((10, 10), np.uint8)),
     r"000001.png: expected \(48, 96\) uint8 for a 96x48 session, got \(10, 10\) uint8"),
    (lambda p: _save_png(p, "labels/000001.png", np.zeros((48, 96, 3), np.uint8)),
     r"000001.png: expected \(48, 96\) uint8 .* got \(48, 96, 3\) uint8"),
    (lambda p: _cut(p, "labels/000001.png", 40), r"000001.png: cannot be read"),
    (lambda p: np.save(p / "flow" / "000001.npy", np.zeros((48, 96, 2))),
     r"000001.npy: expected \(48, 96, 2\) float32 .* got \(48, 96, 2\) float64"),
])
def test_damaged_sessions_name_the_problem(tmp_path, capsys, damage, message):
    path = small_session(tmp_path)
    damage(path)
    before = _tree(tmp_path)
    with pytest.raises(SessionFormatError, match=message) as error:
        list(ReplaySource(path))
    assert str(path) in str(error.value)  # by name: the file, under the session's folder
    assert check_session([str(path), "--load"]) == 1  # the check command says the same, in one line
    err = capsys.readouterr().err
    assert err.count("error: ") == 1 and re.search(message, err.split("error: ")[1].rstrip("\n")), err
    assert _tree(tmp_path) == before  # nothing written, nothing removed


@pytest.mark.parametrize("keep", [0, 5, 50, 200])
def test_a_truncated_npy_is_called_damaged_not_pickled(tmp_path, keep):
    """Cut before its signature, numpy takes the file for pickled data and advises allow_pickle."""
    path = small_session(tmp_path)
    flow = path / "flow" / "000001.npy"
    flow.write_bytes(flow.read_bytes()[:keep])
    with pytest.raises(SessionFormatError) as error:
        list(ReplaySource(path))
    text = str(error.value)
    assert "000001.npy: is corrupt or truncated" in text and "pickle" not in text, text
