"""export-mcap: a session folder becomes an MCAP file that the ``mcap`` package reads through its own
summary and index, with Foxglove's schemas, and that replays into the same SceneFrames as the folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mcap.reader import make_reader

from carla_bridge.session import ReplaySource
from carla_bridge.session.__main__ import main
from carla_bridge.session.mcap_format import IMAGE_TOPICS
from support.sessions import META, SIZE, control_at, record_session

N = 5


@pytest.fixture
def exported(tmp_path):
    frames, _ = record_session(tmp_path / "s", n=N, record_rgb=True, record_depth=True, video=False)
    out = tmp_path / "s.mcap"
    assert main(["export-mcap", str(tmp_path / "s"), str(out)]) == 0
    return frames, tmp_path / "s", out


def test_the_round_trip_gives_back_the_recorded_frames(exported):
    frames, folder, out = exported
    replay = ReplaySource(out)
    assert len(replay) == N and replay.size == SIZE and replay.notes == []
    for position, (recorded, played) in enumerate(zip(frames, replay)):
        assert played.labels.dtype == np.uint8 and np.array_equal(played.labels, recorded.labels)
        assert played.flow.dtype == np.float32 and np.array_equal(played.flow, recorded.flow)  # bit for bit
        assert np.array_equal(played.depth, recorded.depth) and np.array_equal(played.rgb, recorded.rgb)
        assert played.ego == recorded.ego and played.index == recorded.index
        assert played.time_s == recorded.time_s
        assert replay.controls[position] == control_at(position)
    folder_replay = ReplaySource(folder)
    assert replay.record(2)["timings_ms"] == folder_replay.record(2)["timings_ms"] == {"source": 1.5, "inference": 2.25}
    assert replay.meta["model"] == META["model"] and replay.meta["closed"] is True


def test_the_mcap_package_reads_it_through_its_summary_and_index(exported):
    _, _, out = exported
    with open(out, "rb") as handle:
        reader = make_reader(handle)
        summary = reader.get_summary()
        assert summary is not None and summary.chunk_indexes, "chunked and indexed"
        assert {index.compression for index in summary.chunk_indexes} == {"zstd"}  # offline: the smaller file
        topics = {channel.topic: summary.schemas[channel.schema_id].name for channel in summary.channels.values()}
        assert topics["/labels/ids"] == topics["/flow"] == "foxglove.RawImage"
        assert topics["/ego"] == "foxglove.FrameTransform"
        assert topics["/control"] == "neural_drive.Control"
        assert summary.statistics.message_count == N * (len(IMAGE_TOPICS) - 1 + 4)  # no /render from a folder
        metadata = {m.name: m.metadata for m in reader.iter_metadata()}
        assert json.loads(metadata["session"]["size"]) == list(SIZE)
        # log time = simulation time, read through the chunk index (a time range query)
        second = 0.05 * 1e9
        found = [(channel.topic, message.sequence) for _, channel, message in
                 reader.iter_messages(topics=["/control"], starting_at=int(second - 1e6), ending_before=int(second + 1e6))]
        assert found == [("/control", 1)]


def test_export_refuses_an_existing_file_and_a_wrong_name(exported, tmp_path, capsys):
    _, folder, out = exported
    before = out.read_bytes()
    with pytest.raises(SystemExit):
        main(["export-mcap", str(folder), str(out)])
    assert "exists; remove it or name another file" in capsys.readouterr().err
    assert out.read_bytes() == before
    with pytest.raises(SystemExit):
        main(["export-mcap", str(folder), str(tmp_path / "s.bag")])
    assert "must end in .mcap" in capsys.readouterr().err


def test_the_check_command_opens_an_mcap_session(exported, capsys):
    _, _, out = exported
    assert main([str(out), "--load"]) == 0
    assert f"{N} frames, 96x48" in capsys.readouterr().out
