"""game/export.py against real parts: the procedural world, a tiny generator through the torch Renderer."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from carla_bridge.core.frames import Control
from carla_bridge.session import ReplaySource, SessionFormatError, SessionRecorder

torch = pytest.importorskip("torch")
procedural = pytest.importorskip("carla_bridge.procedural")
model_mod = pytest.importorskip("neural_render.model")
runtime = pytest.importorskip("neural_render.runtime")

from game.export import check_determinism, export_session  # noqa: E402

SIZE = (64, 32)
N = 6
STRIP = 14  # caption strip height in game/export.py


_ENGINE: dict[int, np.ndarray] = {}


def frame_rgb(frame) -> np.ndarray:
    return _ENGINE[frame.index].astype(int)


def _model(seed: int):
    torch.manual_seed(seed)
    return model_mod.Vid2VidGenerator(model_mod.PRESETS["tiny"]).eval()


def _renderer(model, size=SIZE):
    return runtime.Renderer(model, backend="torch", device="cpu", precision="fp32", size=size)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """N ticks of the procedural world, rendered by a tiny model and recorded as the game would."""
    path = tmp_path_factory.mktemp("sessions") / "drive"
    renderer = _renderer(_model(0))
    config = procedural.WorldConfig(width=SIZE[0], height=SIZE[1], seed=2)
    meta = {"model": renderer.model_name, "backend": renderer.backend_name,
            "device": renderer.device_name, "precision": renderer.precision, "source": "procedural",
            "seed": 2, "forward_revision": model_mod.FORWARD_REVISION}
    with procedural.ProceduralWorld(config) as world, SessionRecorder(path, meta, size=SIZE) as rec:
        frame = world.reset(seed=2)
        for _ in range(N):
            _ENGINE[frame.index] = frame.rgb.copy()
            rec.add(frame, Control(autopilot=True), renderer.render(frame), {"source": 1.0})
            frame = world.step(Control(autopilot=True))
    assert rec.error is None and rec.frames_written == N
    return path


def test_export_writes_side_by_side_video_and_frames(session, tmp_path):
    renderer = _renderer(_model(0))
    result = export_session(session, renderer, out_mp4=tmp_path / "out.mp4",
                            frames_dir=tmp_path / "frames", progress=False)
    assert result.frames == N and result.size == (3 * SIZE[0], SIZE[1] + STRIP)
    video = iio.imread(tmp_path / "out.mp4")
    assert video.shape == (N, SIZE[1] + STRIP, 3 * SIZE[0], 3)
    pngs = sorted((tmp_path / "frames").glob("*.png"))
    assert len(pngs) == N
    # The PNGs are lossless: the middle panel is exactly what the renderer gives for the replay.
    check = _renderer(_model(0))
    for png, frame in zip(pngs, ReplaySource(session), strict=True):
        image = np.asarray(Image.open(png))
        assert np.array_equal(image[STRIP:, SIZE[0]: 2 * SIZE[0]], check.render(frame))
        engine = image[STRIP:, 2 * SIZE[0]:].astype(int)  # from engine.mp4 (lossy H.264)
        assert engine.shape == (SIZE[1], SIZE[0], 3) and np.abs(engine - frame_rgb(frame)).mean() < 12
        assert image[:STRIP].max() > 100  # the caption was drawn


def test_export_at_another_size_and_without_caption(session, tmp_path):
    renderer = _renderer(_model(0), size=(128, 64))
    stale = tmp_path / "big" / f"{N + 5:06d}.png"  # the tail of an earlier, longer export
    stale.parent.mkdir()
    stale.write_bytes(b"old frame")
    (tmp_path / "big" / "notes.txt").write_text("not a frame")
    result = export_session(session, renderer, frames_dir=tmp_path / "big", caption=False,
                            progress=False)
    assert result.frames == N and result.size == (3 * 128, 64) and result.out_mp4 is None
    assert len(list((tmp_path / "big").glob("*.png"))) == N and not stale.exists()
    assert (tmp_path / "big" / "notes.txt").exists()  # only numbered frames are replaced


def test_replay_through_the_same_model_is_bit_exact(session):
    report = check_determinism(session, _renderer(_model(0)))
    assert report.ok and report.frames == N and report.exact == N and report.max_abs_diff == 0
    assert report.notes == []


def test_another_model_fails_the_determinism_check(session):
    report = check_determinism(session, _renderer(_model(1)))
    assert not report.ok and report.exact == 0 and report.max_abs_diff > report.tolerance


def test_a_session_of_another_network_revision_says_why_it_differs(session, tmp_path):
    import json
    import shutil

    old = tmp_path / "old"
    shutil.copytree(session, old)
    meta = json.loads((old / "session.json").read_text())
    del meta["forward_revision"]  # recorded before sessions kept it: revision 1
    (old / "session.json").write_text(json.dumps(meta))
    report = check_determinism(old, _renderer(_model(0)))
    assert any("network revision 1" in note and "differ by design" in note for note in report.notes), report.notes


def test_export_errors(session, tmp_path):
    with pytest.raises(ValueError, match="out_mp4 and/or frames_dir"):
        export_session(session, _renderer(_model(0)))
    with pytest.raises(SessionFormatError, match="not a session"):
        export_session(tmp_path, _renderer(_model(0)), out_mp4=tmp_path / "x.mp4")


class _InterruptedRenderer:
    """A renderer that Ctrl+C interrupts after ``after`` frames."""

    def __init__(self, renderer, after: int) -> None:
        self.renderer, self.after, self.size, self.renders = renderer, after, renderer.size, 0

    def __getattr__(self, name):  # backend_name, model_name, ...: the wrapped renderer's
        return getattr(self.renderer, name)

    def reset(self) -> None:
        self.renderer.reset()

    def render(self, frame):
        if self.renders == self.after:
            raise KeyboardInterrupt
        self.renders += 1
        return self.renderer.render(frame)


@pytest.mark.parametrize("failure", ["corrupt frame", "ctrl+c"])
def test_a_failed_export_keeps_the_previous_one_and_its_frames_apart(session, tmp_path, failure):
    # A corrupt session file (or Ctrl+C) mid-export leaves the previous out.mp4 and its PNGs as they
    # were; the frames exported before it are kept apart (out.partial.mp4, frames/partial-export), never
    # at the final path.
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(session, damaged)
    renderer = _renderer(_model(0))
    if failure == "corrupt frame":
        with open(damaged / "labels" / "000003.png", "r+b") as png:
            png.truncate(100)
        error = SessionFormatError
    else:
        renderer, error = _InterruptedRenderer(renderer, after=3), KeyboardInterrupt
    out, frames = tmp_path / "out.mp4", tmp_path / "frames"
    frames.mkdir()
    for previous in (out, frames / "000000.png", frames / "000009.png"):
        previous.write_bytes(b"last week's export")
    with pytest.raises(error) as raised:
        export_session(damaged, renderer, out_mp4=out, frames_dir=frames, progress=False)
    partial_mp4, partial_frames = tmp_path / "out.partial.mp4", frames / "partial-export"
    assert raised.value.__notes__ == [f"the 3 frames exported before it are in {partial_mp4} and "
                                      f"{partial_frames}; {out} and {frames} are as before"]
    assert out.read_bytes() == b"last week's export"
    assert sorted(p.name for p in frames.glob("*.png")) == ["000000.png", "000009.png"]
    assert iio.imread(partial_mp4).shape[0] == 3 and len(list(partial_frames.glob("*.png"))) == 3
    # The next export that completes replaces the previous result and clears the partial one.
    export_session(session, _renderer(_model(0)), out_mp4=out, frames_dir=frames, progress=False)
    assert iio.imread(out).shape[0] == N and len(list(frames.glob("*.png"))) == N
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged", "frames", "out.mp4"]
    assert not partial_frames.exists()


def _copy_session(session, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(session, copy)
    return copy


@pytest.mark.parametrize("damage", [
    lambda mp4: mp4.write_bytes(b"garbage\n"),  # `echo garbage > engine.mp4`
    lambda mp4: mp4.write_bytes(mp4.read_bytes()[:500]),  # cut inside its header
])
def test_a_damaged_engine_mp4_costs_the_engine_column_not_the_export(session, tmp_path, capsys, damage):
    # The session's lossless files are enough to export, as they are to replay a drive: a damaged
    # engine.mp4 costs its column and one warning line naming it, not the export (nor ffmpeg's "Could
    # not load meta information" and ~17 lines of its log).
    damaged = _copy_session(session, tmp_path)
    damage(damaged / "engine.mp4")
    result = export_session(damaged, _renderer(_model(0)), out_mp4=tmp_path / "out.mp4", progress=False)
    assert result.frames == N and result.size == (2 * SIZE[0], SIZE[1] + STRIP)  # labels | render
    assert iio.imread(tmp_path / "out.mp4").shape[0] == N
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stderr" not in err, err
    assert f"warning: {damaged / 'engine.mp4'} cannot be decoded" in err and "without the engine column" in err


def test_an_engine_mp4_damaged_midway_leaves_the_column_blank_from_there(session, tmp_path, capsys,
                                                                          monkeypatch):
    import imageio_ffmpeg

    real = imageio_ffmpeg.read_frames

    def fails_after_two(path, *args, **kwargs):
        frames = real(path, *args, **kwargs)
        yield next(frames)  # the header
        yield next(frames)
        yield next(frames)
        frames.close()
        raise RuntimeError("Could not read frame 3:\nEnd of file reached\n=== stderr ===\n[h264] junk")

    monkeypatch.setattr(imageio_ffmpeg, "read_frames", fails_after_two)
    out = tmp_path / "frames"
    result = export_session(session, _renderer(_model(0)), frames_dir=out, progress=False)
    assert result.frames == N and result.size == (3 * SIZE[0], SIZE[1] + STRIP)  # one width throughout
    engine = [np.asarray(Image.open(png))[STRIP:, 2 * SIZE[0]:] for png in sorted(out.glob("*.png"))]
    assert all(image.max() > 0 for image in engine[:2]) and all(image.max() == 0 for image in engine[2:])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stderr" not in err and "junk" not in err, err
    assert "engine.mp4 cannot be decoded after 2 frames (Could not read frame 3); " \
           "the engine column is blank from there on" in err


def test_an_engine_mp4_cut_short_keeps_the_frame_width(session, tmp_path, monkeypatch):
    # A video cut by a crash ends early: the column stays (blank past its end) and every frame keeps its
    # width, since the mp4 stream refuses a narrower frame ("frame size changed").
    import imageio_ffmpeg

    real = imageio_ffmpeg.read_frames

    def ends_after_two(path, *args, **kwargs):
        frames = real(path, *args, **kwargs)
        yield from (next(frames) for _ in range(3))  # the header and two frames, then the end
        frames.close()

    monkeypatch.setattr(imageio_ffmpeg, "read_frames", ends_after_two)
    result = export_session(session, _renderer(_model(0)), out_mp4=tmp_path / "out.mp4", progress=False)
    monkeypatch.undo()  # iio reads the export through read_frames too
    assert result.frames == N and iio.imread(tmp_path / "out.mp4").shape == (N, SIZE[1] + STRIP, 3 * SIZE[0], 3)


def test_a_session_with_rgb_pngs_never_reads_engine_mp4(tmp_path, capsys):
    path = tmp_path / "rgb"
    config = procedural.WorldConfig(width=SIZE[0], height=SIZE[1], seed=2)
    with procedural.ProceduralWorld(config) as world, \
            SessionRecorder(path, {}, size=SIZE, record_rgb=True) as rec:
        frame = world.reset(seed=2)
        for _ in range(2):
            rec.add(frame, Control(autopilot=True), None, {})
            frame = world.step(Control(autopilot=True))
    (path / "engine.mp4").write_bytes(b"garbage\n")
    result = export_session(path, _renderer(_model(0)), frames_dir=tmp_path / "frames", progress=False)
    assert result.frames == 2 and result.size == (3 * SIZE[0], SIZE[1] + STRIP)
    assert "engine.mp4" not in capsys.readouterr().err


def test_a_failed_video_is_not_promised_a_frame_count(tmp_path):
    from game.export import kept_note

    mp4, frames = tmp_path / "out.partial.mp4", tmp_path / "frames" / "partial-export"
    mp4.write_bytes(b"what ffmpeg managed")
    frames.mkdir(parents=True)
    (frames / "000000.png").write_bytes(b"png")
    pairs = [(mp4, tmp_path / "out.mp4"), (frames, tmp_path / "frames")]
    # the PNGs hold every frame rendered; the mp4 of a failed ffmpeg (a full disk) fewer, how many unknown
    assert kept_note(60, pairs, "*.png", failed=(mp4,)) == (
        f"the 60 frames exported before it are in {frames}; what ffmpeg wrote before it failed is in {mp4}")
    mp4.write_bytes(b"")  # nothing written at all: removed, not pointed to
    assert kept_note(60, pairs[:1], "*.png", failed=(mp4,)) == "nothing was exported" and not mp4.exists()


def test_export_to_a_full_disk_names_the_cause(session):
    from support.disk import tiny_tmpfs

    with tiny_tmpfs("8k", "test_a_failed_video_is_not_promised...") as mount:
        with pytest.raises(RuntimeError) as raised:
            export_session(session, _renderer(_model(0), size=(256, 128)), out_mp4=mount / "x.mp4",
                           progress=False)
        # It said "ffmpeg exited with 228: ;" and "the 6 frames exported before it are in x.partial.mp4"
        # of a file that held fewer.
        assert str(raised.value) == f"export to {mount / 'x.mp4'} failed: x.partial.mp4: ffmpeg exited with " \
                                    "228 (no space left on device)"
        assert raised.value.__notes__ == [f"what ffmpeg wrote before it failed is in {mount / 'x.partial.mp4'}"]
        assert not list(mount.glob("*.log"))  # ffmpeg's log was empty
