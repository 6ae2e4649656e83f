"""Recording straight into MCAP (SessionRecorder(record_format="mcap")): the writer thread's file replays
as the drive saw it, carries the render, the meta of the start and of the close, and is never written
over an existing file."""

from __future__ import annotations

import json

import numpy as np
from mcap.reader import make_reader

from carla_bridge.session import ReplaySource, SessionRecorder
from carla_bridge.session.mcap_reader import McapSession
from carla_bridge.session.mcap_writer import CHUNK_BYTES
from game.bench.workloads import synthetic_frame
from support.sessions import META, SIZE, control_at, drive, record_session


def test_a_recording_replays_as_driven(tmp_path):
    out = tmp_path / "deep" / "run.mcap"
    frames, rec = record_session(out, n=6, record_format="mcap")
    replay = ReplaySource(out)
    assert len(replay) == 6 and replay.notes == []
    for position, (recorded, played) in enumerate(zip(frames, replay)):
        assert np.array_equal(played.labels, recorded.labels) and np.array_equal(played.flow, recorded.flow)
        assert np.array_equal(played.rgb, recorded.rgb)  # the engine image is lossless in MCAP
        assert played.ego == recorded.ego and replay.controls[position] == control_at(position)
    assert "sha256" in replay.record(3)["render"]  # the determinism check's digest, as in a folder
    assert replay.meta["closed"] is True and replay.meta["frames"] == 6 and replay.meta["model"] == META["model"]
    assert replay.meta["record"]["format"] == "mcap" and not list(tmp_path.glob("**/*.mp4"))


def test_the_render_is_a_channel(tmp_path):
    out = tmp_path / "run.mcap"
    record_session(out, n=2, record_format="mcap")
    with open(out, "rb") as handle:
        reader = make_reader(handle)
        renders = [message for _, channel, message in reader.iter_messages(topics=["/render"])]
        closing = {m.name: m.metadata for m in reader.iter_metadata()}["session_close"]
    assert len(renders) == 2 and json.loads(closing["closed"]) is True


def test_a_drive_records_lz4_chunks_and_an_export_zstd(tmp_path):
    """LZ4 on the drive (its CPU comes from the renderer), zstd offline: mcap_writer.py says why."""
    out = tmp_path / "run.mcap"
    record_session(out, n=2, record_format="mcap")
    with open(out, "rb") as handle:
        assert {index.compression for index in make_reader(handle).get_summary().chunk_indexes} == {"lz4"}


def test_an_unclosed_file_loses_at_most_its_unfinished_chunk(tmp_path):
    out = tmp_path / "run.mcap"
    rec = SessionRecorder(out, {}, size=SIZE, record_format="mcap")
    drive(rec, 30)
    rec._writer.finish()  # every tick handed to the mcap writer; no summary, no last chunk (a kill -9 now)
    session = McapSession(out)
    width, height = SIZE
    tick_bytes = width * height * (1 + 3 + 8 + 3 + 3)  # ids, colour, flow, render, engine
    assert 0 < len(session.records) < 30
    assert 30 - len(session.records) <= CHUNK_BYTES // tick_bytes + 1
    assert session.meta["closed"] is False and "cut off" in session.notes[0]
    assert np.array_equal(session.load(len(session.records) - 1).labels, synthetic_frame(len(session.records) - 1, SIZE).labels)


def test_an_existing_file_is_never_overwritten(tmp_path):
    out = tmp_path / "run.mcap"
    out.write_bytes(b"precious")
    rec = SessionRecorder(out, {}, size=SIZE, record_format="mcap")
    assert rec.error and "already exists" in rec.error
    rec.close()
    assert out.read_bytes() == b"precious"


def test_an_empty_recording_is_removed(tmp_path):
    out = tmp_path / "new" / "run.mcap"
    rec = SessionRecorder(out, {}, size=SIZE, record_format="mcap")
    assert rec.discard_if_empty()
    assert not out.exists() and not out.parent.exists()
