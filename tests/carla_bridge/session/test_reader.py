"""Reading a session folder back: a cut-off last line is tolerated with a note, everything else wrong
with a folder is a SessionFormatError naming the file (and line) and the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carla_bridge.core.frames import Control
from carla_bridge.session import FORMAT_VERSION, ReplaySource, SessionFormatError, SessionRecorder, open_session
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
])
def test_damaged_sessions_name_the_problem(tmp_path, damage, message):
    path = small_session(tmp_path)
    damage(path)
    with pytest.raises(SessionFormatError, match=message):
        list(ReplaySource(path))


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
