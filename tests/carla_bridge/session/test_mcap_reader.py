"""Reading an MCAP session: a file cut off mid-chunk keeps the ticks before the cut, damage elsewhere and
files that are not our sessions are named in one error."""

from __future__ import annotations

import numpy as np
import pytest
from mcap.writer import Writer

from carla_bridge.session import ReplaySource, SessionFormatError
from carla_bridge.session.mcap_format import encode_tick
from carla_bridge.session.mcap_reader import McapSession
from carla_bridge.session.mcap_writer import McapSessionFile
from carla_bridge.session.reader import load_frame, open_session
from support.sessions import record_session


def _write(tmp_path, n=6, chunk_bytes=4000):
    """An MCAP of ``n`` recorded ticks in small chunks; returns the frames and the file size after each tick."""
    frames, _ = record_session(tmp_path / "s", n=n, video=False)
    index = open_session(tmp_path / "s")
    out = tmp_path / "s.mcap"
    file = McapSessionFile(open(out, "wb"), index.meta, chunk_bytes=chunk_bytes)
    sizes = []
    for position, record in enumerate(index.records):
        frame = load_frame(index, position)
        record = dict(record)
        file.write_tick(record, encode_tick(record, {"labels": frame.labels, "flow": frame.flow}, None, None))
        sizes.append(out.stat().st_size)  # write_tick hands complete chunks to the OS
    file.close()
    return frames, out, sizes


def test_a_file_cut_mid_chunk_yields_the_ticks_before_the_cut(tmp_path):
    frames, out, sizes = _write(tmp_path)
    data = out.read_bytes()
    cut = tmp_path / "cut.mcap"
    for ticks in (1, 3, 5):
        cut.write_bytes(data[:sizes[ticks] + 100])  # 100 bytes into the chunk of tick ``ticks``
        replay = ReplaySource(cut)
        assert len(replay) == ticks, replay.notes
        assert "cut off" in replay.notes[0]
        for recorded, played in zip(frames, replay):
            assert np.array_equal(played.labels, recorded.labels) and np.array_equal(played.flow, recorded.flow)


def test_frames_load_in_any_order(tmp_path):
    frames, out, _ = _write(tmp_path, n=4)
    session = McapSession(out)
    for position in (2, 3, 0, 1, 1):  # a step back re-reads from the start
        assert np.array_equal(session.load(position).labels, frames[position].labels)
    with pytest.raises(IndexError):
        session.load(4)


def test_damage_inside_the_file_is_an_error_not_a_cut(tmp_path):
    _, out, sizes = _write(tmp_path, n=4)
    data = bytearray(out.read_bytes())
    data[sizes[1] + 200:sizes[1] + 230] = b"\xff" * 30  # inside the compressed data of a middle chunk
    out.write_bytes(bytes(data))
    with pytest.raises(SessionFormatError, match="damaged at byte"):
        McapSession(out)


def test_files_that_are_not_our_sessions(tmp_path):
    other = tmp_path / "other.mcap"
    with open(other, "wb") as handle:  # an MCAP from another tool: no 'session' metadata
        writer = Writer(handle)
        writer.start()
        writer.finish()
    with pytest.raises(SessionFormatError, match="not a neural-drive session.*export-mcap"):
        McapSession(other)
    text = tmp_path / "notes.mcap"
    text.write_text("hello")
    with pytest.raises(SessionFormatError, match="not an MCAP session file"):
        McapSession(text)
    with pytest.raises(SessionFormatError, match="no such file"):
        ReplaySource(tmp_path / "missing.mcap")
