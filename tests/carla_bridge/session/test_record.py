"""Record a few synthetic ticks, check every file of the session folder, replay them bit-identically."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from carla_bridge.core.frames import Control
from carla_bridge.session import (
    FORMAT_VERSION, ReplaySource, SessionEnded, SessionRecorder, digest_thumb, render_digest,
)
from game.bench.workloads import synthetic_frame

SIZE = (96, 48)
N = 8


def _control(i: int) -> Control:
    return Control(throttle=0.1 * (i % 10), steer=-0.5 + 0.1 * i, brake=0.0, autopilot=i % 2 == 1)


def _render(frame) -> np.ndarray:
    return np.ascontiguousarray(np.roll(frame.rgb, frame.index, axis=1))


def _record(path, n=N, **kwargs):
    meta = {"model": "tiny-test", "backend": "torch", "device": "cpu", "precision": "fp32",
            "source": "synthetic", "seed": 3, "delta_s": 0.05}
    frames = [synthetic_frame(i, SIZE, seed=3) for i in range(n)]
    with SessionRecorder(path, meta, size=SIZE, **kwargs) as rec:
        for i, frame in enumerate(frames):
            rec.add(frame, _control(i), _render(frame), {"source": 1.5, "inference": 2.25})
    assert rec.error is None
    assert rec.frames_written == n
    return frames, rec


def test_every_file_of_a_session(tmp_path):
    path = tmp_path / "run"
    frames, _ = _record(path, record_rgb=True, record_depth=True)
    meta = json.loads((path / "session.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["size"] == list(SIZE) and meta["fps"] == 20.0
    assert meta["frames"] == N and meta["closed"] is True and meta["error"] is None
    assert meta["model"] == "tiny-test" and meta["backend"] == "torch" and meta["seed"] == 3
    assert meta["project_version"] and "started_at" in meta and "ended_at" in meta
    assert meta["video"] == {"render": N, "engine": N}
    lines = (path / "frames.jsonl").read_text().splitlines()
    assert len(lines) == N
    for i, line in enumerate(lines):
        record = json.loads(line)
        assert record["position"] == i and record["index"] == i
        assert record["time_s"] == pytest.approx(0.05 * i)
        assert record["control"] == _control(i).as_dict() and record["autopilot"] == (i % 2 == 1)
        assert record["cut"] == (i == 0)
        assert record["timings_ms"] == {"source": 1.5, "inference": 2.25}
        assert record["files"] == ["labels", "flow", "depth", "rgb"]
        assert record["video"] == {"render": True, "engine": True}
        assert record["render"] == render_digest(_render(frames[i]))
        with Image.open(path / "labels" / f"{i:06d}.png") as image:
            assert image.mode == "L" and image.size == SIZE
        assert np.load(path / "flow" / f"{i:06d}.npy").dtype == np.float32
        assert np.load(path / "depth" / f"{i:06d}.npy").shape == (SIZE[1], SIZE[0])
        with Image.open(path / "rgb" / f"{i:06d}.png") as image:
            assert image.mode == "RGB"
    for name in ("render.mp4", "engine.mp4"):
        video = iio.imread(path / name)
        assert video.shape == (N, SIZE[1], SIZE[0], 3)
    assert not list(path.rglob("*.tmp"))


def test_replay_is_bit_identical(tmp_path):
    frames, _ = _record(tmp_path / "run", record_rgb=True, record_depth=True)
    with ReplaySource(tmp_path / "run") as replay:
        assert replay.name == "replay" and len(replay) == N and replay.meta["seed"] == 3
        assert replay.notes == []
        first = replay.reset(seed=123)
        assert first.cut and np.array_equal(first.labels, frames[0].labels)
        got = [first] + [replay.step(Control(throttle=1.0)) for _ in range(N - 1)]
        with pytest.raises(SessionEnded):
            replay.step(Control())
        assert replay.controls == [_control(i) for i in range(N)]
        assert replay.control == _control(N - 1)
    for want, have in zip(frames, got, strict=True):
        assert have.index == want.index and have.time_s == want.time_s and have.cut == want.cut
        assert np.array_equal(have.labels, want.labels) and have.labels.dtype == np.uint8
        assert np.array_equal(have.flow, want.flow) and have.flow.dtype == np.float32
        assert np.array_equal(have.depth, want.depth)
        assert np.array_equal(have.rgb, want.rgb)
        assert have.ego == want.ego
        have.validate()
    again = ReplaySource(tmp_path / "run")
    assert all(np.array_equal(a.labels, b.labels) for a, b in zip(again, got, strict=True))


def test_optional_arrays_are_absent_unless_asked(tmp_path):
    _record(tmp_path / "run", n=3, video=False, record_flow=False)
    path = tmp_path / "run"
    assert not (path / "render.mp4").exists() and not (path / "rgb").exists()
    frame = ReplaySource(path).reset()
    assert frame.flow is None and frame.depth is None and frame.rgb is None
    assert json.loads((path / "frames.jsonl").read_text().splitlines()[0])["video"] == {}


def test_video_frames_are_dropped_first_when_the_writer_is_behind(tmp_path):
    _, rec = _record(tmp_path / "run", max_video_backlog=0)
    assert rec.video_frames_dropped == N and rec.frames_written == N
    replay = ReplaySource(tmp_path / "run")
    assert len(replay) == N and all(replay.record(i)["video"] == {"render": False} for i in range(N))
    assert "render" in replay.record(0)  # the digest survives for the determinism check


def test_replay_at_another_resolution_rescales_flow(tmp_path):
    frames, _ = _record(tmp_path / "run", n=2)
    frame = ReplaySource(tmp_path / "run", size=(48, 24)).reset()
    assert frame.labels.shape == (24, 48) and frame.flow.shape == (24, 48, 2)
    assert np.array_equal(frame.labels, frames[0].labels[1::2, 1::2])
    assert np.allclose(frame.flow, frames[0].flow[1::2, 1::2] * 0.5)


def test_timings_accept_ms_and_ns_pairs_and_skip_junk(tmp_path):
    with SessionRecorder(tmp_path / "s", {}, size=SIZE, video=False) as rec:
        rec.add(synthetic_frame(0, SIZE), Control(), None,
                {"source": 1.25, "inference": (1_000_000, 3_500_000), "bad": "x", "nan": float("nan")})
    assert rec.error is None
    assert ReplaySource(tmp_path / "s").record(0)["timings_ms"] == {"source": 1.25, "inference": 2.5}


def test_render_digest_thumbnail():
    image = np.zeros((48, 96, 3), np.uint8)
    image[:, 48:] = 200
    digest = render_digest(image)
    thumb = digest_thumb(digest)
    assert thumb.shape == (8, 16, 3) and thumb[:, :8].max() == 0 and thumb[:, 8:].min() == 200
    assert render_digest(image) == digest and render_digest(image + 1)["sha256"] != digest["sha256"]


def test_starting_ffmpeg_while_another_thread_runs_blas_does_not_deadlock(tmp_path):
    """imageio_ffmpeg.write_frames forks (preexec_fn) and can hang in OpenBLAS's at-fork handler when the
    drive thread is inside a BLAS call; the writer starts ffmpeg with vfork-able arguments instead."""
    import threading

    from carla_bridge.session.video import VideoStream

    stop = threading.Event()

    def blas() -> None:
        a = np.random.default_rng(0).random((192, 192), dtype=np.float32)
        while not stop.is_set():
            a @ a

    def spawn() -> None:
        for i in range(8):
            stream = VideoStream(tmp_path / f"v{i}.mp4", fps=20)
            stream.write(np.zeros((32, 64, 3), np.uint8))
            stream.close()
            assert stream.error is None

    worker = threading.Thread(target=blas, daemon=True)
    worker.start()
    spawner = threading.Thread(target=spawn, daemon=True)
    spawner.start()
    spawner.join(timeout=60)
    stop.set()
    assert not spawner.is_alive(), "starting ffmpeg deadlocked"


@pytest.mark.parametrize("shape", [(48, 96), (7, 13), (1, 1)])
def test_grey_png_encoder_round_trips(tmp_path, shape):
    from carla_bridge.session.format import encode_grey_png

    labels = np.random.default_rng(1).integers(0, 29, shape, dtype=np.uint8)
    (tmp_path / "l.png").write_bytes(encode_grey_png(labels))
    with Image.open(tmp_path / "l.png") as image:
        assert image.mode == "L" and np.array_equal(np.asarray(image), labels)


def test_an_empty_recording_is_discarded_but_nothing_else_in_its_folder(tmp_path):
    meta = {"source": "synthetic", "delta_s": 0.05}
    empty = SessionRecorder(tmp_path / "sessions" / "a", meta, size=SIZE)
    assert empty.discard_if_empty()
    assert not (tmp_path / "sessions").exists()  # the folders it made, parents included, are gone

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    shared = SessionRecorder(tmp_path / "mine", meta, size=SIZE)
    assert shared.discard_if_empty()
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]

    frames, _ = _record(tmp_path / "full", n=2)
    kept = SessionRecorder(tmp_path / "one", meta, size=SIZE)
    kept.add(frames[0], _control(0), None, {})
    assert not kept.discard_if_empty()  # a frame was handed over: it is a session
    assert json.loads((tmp_path / "one" / "session.json").read_text())["frames"] == 1


def test_discarding_a_refused_recorder_leaves_the_session_it_found(tmp_path):
    _record(tmp_path / "s", n=3)
    before = sorted(p.name for p in (tmp_path / "s").iterdir())
    refused = SessionRecorder(tmp_path / "s", {"source": "synthetic"}, size=SIZE)
    assert "already holds a session" in refused.error
    assert not refused.discard_if_empty()  # it deleted that session's session.json and frames.jsonl
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == before
