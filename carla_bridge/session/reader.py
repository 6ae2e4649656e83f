"""Read a session folder back: validate session.json, index frames.jsonl, load one frame's files.

Everything that can be wrong with a folder raises SessionFormatError naming the file (and line) and what
is wrong; the one tolerated defect is a half-written last line of frames.jsonl (a crash or kill -9 while
writing it), which is skipped with a note, because the recorder appends that line last (writer.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from carla_bridge.core.frames import Control, EgoState, SceneFrame
from carla_bridge.core.labels import NUM_LABELS
from carla_bridge.core.values import is_int, is_real
from carla_bridge.session.format import (FRAME_FILES, FRAMES_JSONL, SESSION_JSON, SessionFormatError, check_meta,
                                         frame_file)

REQUIRED_RECORD_KEYS = ("position", "index", "time_s", "ego", "control", "cut", "files")
NPY_MAGIC = b"\x93NUMPY"  # the first bytes of every .npy file (numpy.lib.format)
DAMAGED_FIX = "restore it from a copy of the session, or record the session again"


@dataclass
class SessionIndex:
    """A validated session: its meta (session.json), one dict per complete frame, and reader notes."""

    path: Path
    meta: dict[str, Any]
    records: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        width, height = self.meta["size"]
        return int(width), int(height)

    def load(self, position: int) -> SceneFrame:
        """The SceneFrame of frame ``position`` (load_frame)."""
        return load_frame(self, position)


def open_session(directory: str | Path) -> SessionIndex:
    """Validate and index a session folder; raise SessionFormatError naming what is wrong and where."""
    path = Path(directory)
    if path.is_file():  # e.g. its session.json or render.mp4 was passed instead of the folder
        raise SessionFormatError(f"{path}: not a session: a file; pass the session's folder ({path.parent})")
    if not path.is_dir():
        raise SessionFormatError(f"{path}: not a session: no such folder")
    meta_path = path / SESSION_JSON
    inside = _sessions_inside(path) if not meta_path.is_file() else []
    if inside:  # e.g. sessions/, where the R key puts its timestamped recordings
        shown = ("..., " if len(inside) > 3 else "") + ", ".join(p.name for p in inside[-3:])  # the latest
        raise SessionFormatError(f"{path}: not a session but a folder of {len(inside)} "
                                 f"session{'s' if len(inside) > 1 else ''} ({shown}); pass one of "
                                 f"them, e.g. {inside[-1]} (the latest)")
    if not meta_path.is_file():
        raise SessionFormatError(
            f"{path}: not a session: {SESSION_JSON} is missing (a session folder holds {SESSION_JSON}, "
            f"{FRAMES_JSONL} and labels/; record one with launch.py --record DIR)"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # nested too deep
        raise SessionFormatError(f"{meta_path}: cannot be read as JSON: {exc}") from None
    meta = check_meta(meta, meta_path)
    lines_path = path / FRAMES_JSONL
    if not lines_path.is_file():
        raise SessionFormatError(f"{lines_path} is missing: the session has no frame records")
    index = SessionIndex(path=path, meta=meta, records=[])
    index.records = _read_records(lines_path, index.notes)
    _note_missing_records(index, lines_path)
    for record in index.records:  # record_problem checked each record's fields
        for kind in record["files"]:
            file = frame_file(path, kind, record["position"])
            if not file.is_file():
                raise SessionFormatError(
                    f"{file} is missing (listed by {lines_path.name} line {record['position'] + 1})"
                )
    return index


def _sessions_inside(path: Path) -> list[Path]:
    """The session folders directly inside ``path``, oldest first (timestamped names sort by time)."""
    try:
        return sorted(child for child in path.iterdir() if (child / SESSION_JSON).is_file())
    except OSError:  # unreadable: the caller's 'session.json is missing' says enough
        return []


def _note_missing_records(index: SessionIndex, lines_path: Path) -> None:
    """Warn when frames.jsonl holds fewer records than a cleanly closed session.json counted: the file
    was cut short after the recording (a truncated copy, an edit), and the replay would otherwise end
    early saying every recorded frame was played. After a crash (closed: false) frames.jsonl is the
    truth, and session.json's count is stale by design: no warning then."""
    claimed, held = index.meta.get("frames"), len(index.records)
    if index.meta.get("closed") is True and isinstance(claimed, int) and claimed > held:
        index.notes.append(f"{lines_path.name} holds {held} frames but {SESSION_JSON} says the recording closed "
                           f"with {claimed} ({lines_path.name} was cut short since); replaying the {held}")


def _read_records(lines_path: Path, notes: list[str]) -> list[dict[str, Any]]:
    try:
        raw = lines_path.read_bytes()
    except OSError as exc:
        raise SessionFormatError(f"{lines_path}: cannot be read: {exc}") from None
    lines = raw.split(b"\n")
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        last = number == len(lines)
        if not line.strip():
            continue
        try:
            if last:  # text after the final newline: the recorder was stopped while writing it
                raise ValueError("no newline at the end")
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
            if last or (number == len(lines) - 1 and not lines[-1].strip()):
                notes.append(f"{lines_path.name} line {number} is incomplete ({exc}); ignored "
                             "(the recording was cut off there)")
                break
            raise SessionFormatError(f"{lines_path}:{number}: not a JSON record: {exc}") from None
        if not isinstance(record, dict):
            raise SessionFormatError(f"{lines_path}:{number}: expected a JSON object")
        missing = [k for k in REQUIRED_RECORD_KEYS if k not in record]
        if missing:
            raise SessionFormatError(f"{lines_path}:{number}: record lacks {', '.join(missing)}")
        problem = record_problem(record)
        if problem:
            raise SessionFormatError(f"{lines_path}:{number}: {problem}; {DAMAGED_FIX}")
        if record["position"] != len(records):
            raise SessionFormatError(
                f"{lines_path}:{number}: position {record['position']} out of order "
                f"(expected {len(records)}); the file was edited or two recordings share the folder"
            )
        records.append(record)
    return records


def record_problem(record: dict[str, Any]) -> str | None:
    """What is wrong with the fields of one frames.jsonl record, or None. The recorder never writes a
    bad line, but an edited or damaged file may hold 'files': null or [], 'time_s': "abc", 'position':
    0.0 or a throttle of 5: the reader is the boundary, so the check command and the replay name the
    line instead of failing later in a TypeError or KeyError."""
    for key in ("position", "index"):
        if not is_int(record[key]):
            return f"'{key}' must be a whole number, got {record[key]!r}"
    if not is_real(record["time_s"], finite=True):
        return f"'time_s' must be a finite number, got {record['time_s']!r}"
    if not isinstance(record["cut"], bool):
        return f"'cut' must be true or false, got {record['cut']!r}"
    files = record["files"]
    if not (isinstance(files, list) and all(isinstance(kind, str) for kind in files)):
        return f"'files' must be a list of file kinds ({', '.join(FRAME_FILES)}), got {files!r}"
    unknown = [kind for kind in files if kind not in FRAME_FILES]
    if unknown:
        return f"unknown file kind {unknown[0]!r} in 'files' (known: {', '.join(FRAME_FILES)})"
    if "labels" not in files:
        return f"'files' {files!r} lacks 'labels' (every frame has a label map)"
    for key, parse in (("control", Control.from_dict), ("ego", EgoState.from_dict)):
        if not isinstance(record[key], dict):
            return f"'{key}' must be a JSON object, got {record[key]!r}"
        try:
            parse(record[key])
        except (KeyError, TypeError, ValueError) as exc:
            return f"bad '{key}': {exc}"
    return None


def record_control(record: dict[str, Any]) -> Control:
    """The control the drive passed to SessionRecorder.add for this frame."""
    return Control.from_dict(record["control"])


def load_frame(index: SessionIndex, position: int) -> SceneFrame:
    """Read the files of frame ``position`` into a SceneFrame (labels bit-identical to the recording)."""
    if not 0 <= position < len(index.records):
        raise IndexError(f"frame {position} outside 0..{len(index.records) - 1} of {index.path}")
    record = index.records[position]
    width, height = index.size
    arrays: dict[str, np.ndarray] = {}
    for kind in record["files"]:
        file = frame_file(index.path, kind, position)
        array = _read_array(file)
        expected = {"labels": ((height, width), np.uint8), "flow": ((height, width, 2), np.float32),
                    "depth": ((height, width), np.float32), "rgb": ((height, width, 3), np.uint8)}[kind]
        if array.shape != expected[0] or array.dtype != expected[1]:
            raise SessionFormatError(
                f"{file}: expected {expected[0]} {np.dtype(expected[1]).name} for a {width}x{height} "
                f"session, got {array.shape} {array.dtype}"
            )
        problem = values_problem(kind, array)
        if problem:
            raise SessionFormatError(f"{file}: {problem}; {DAMAGED_FIX}")
        arrays[kind] = array
    return SceneFrame(
        index=int(record["index"]), time_s=float(record["time_s"]), labels=arrays["labels"],
        flow=arrays.get("flow"), depth=arrays.get("depth"), rgb=arrays.get("rgb"),
        ego=EgoState.from_dict(record["ego"]),
        cut=bool(record["cut"]),
    )


def values_problem(kind: str, array: np.ndarray) -> str | None:
    """Values no recording holds (the recorder writes frames the Renderer accepted): tag ids past the
    label set or non-finite flow. Checked here, where the data enters from disk, so that `--load` and the
    replay name the damaged file rather than the Renderer rejecting its frame."""
    if kind == "labels" and array.size and int(array.max()) >= NUM_LABELS:
        return f"holds tag id {int(array.max())}, outside 0..{NUM_LABELS - 1} (CARLA semantic tags)"
    if kind == "flow" and array.size and not (np.isfinite(array.min()) and np.isfinite(array.max())):
        return "holds NaN or infinite flow"  # min/max propagate NaN: two passes, not a boolean array
    return None


def _read_array(file: Path) -> np.ndarray:
    if file.suffix == ".npy":
        return _read_npy(file)
    try:
        with Image.open(file) as image:
            image.load()
            return np.asarray(image)
    except Exception as exc:  # truncated/corrupt file: name it
        raise SessionFormatError(f"{file}: cannot be read: {exc}") from None


def _read_npy(file: Path) -> np.ndarray:
    """A recorded .npy array. numpy takes a file cut short before its signature for pickled data and
    advises ``allow_pickle``: a session never holds pickles, so say what it is, a damaged file."""
    try:
        with open(file, "rb") as handle:
            if handle.read(len(NPY_MAGIC)) != NPY_MAGIC:
                raise SessionFormatError(f"{file}: is corrupt or truncated (it does not start like a .npy "
                                         f"array); {DAMAGED_FIX}")
        return np.load(file, allow_pickle=False)
    except SessionFormatError:
        raise
    except Exception as exc:  # a header or data cut short
        raise SessionFormatError(f"{file}: is corrupt or truncated ({exc}); {DAMAGED_FIX}") from None
