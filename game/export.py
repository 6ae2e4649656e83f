"""Render a recorded session through a Renderer: side-by-side video/PNGs, and the determinism check.

    export_session("sessions/run1", renderer, out_mp4="out.mp4")      # labels | render | engine
    check_determinism("sessions/run1", renderer).ok                    # same frames as recorded?

Side-by-side layout: the colorized label map, the neural render, and the engine's own rgb when the
session has it (lossless rgb PNGs, else decoded from engine.mp4), all at the renderer's size, under
a caption strip (model, backend, device, precision, frame) drawn with Pillow's built-in font (Pillow
ships with imageio, so no pygame or font files).
Outputs are written under a partial name and moved into place only when the export completes: out.mp4
is written as out.partial.mp4 beside it, the PNGs of frames/ into frames/partial-export/. A failed or
interrupted export (a corrupt frame, a full disk, Ctrl+C) so leaves a previous result as it was, even
with --overwrite, and what it rendered stays under the partial name (it may be all someone needed),
replaced by the next export. The final move is a rename on one file system: the partial mp4 lies beside
its target, the partial frames inside theirs (not beside: `--export-frames ~` would need /home writable).
Determinism: the recorder stores a fingerprint of every rendered frame (carla_bridge.session.format
.render_digest: sha256 of the bytes + 16x8 block-mean thumbnail); the replay's renders are compared with
it. The mp4 is lossy and cannot serve for this.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from carla_bridge.core.labels import colorize
from carla_bridge.session import ReplaySource, digest_thumb, render_digest
from carla_bridge.session.format import ENGINE_MP4
from carla_bridge.session.video import VideoStream
from neural_render.model import FORWARD_REVISION

# Thumbnail tolerance of the determinism check, in grey levels of 16x8 block means. The torch CPU
# backend replays bit-exactly (tests assert exact == frames); GPU kernels may pick other algorithms from
# run to run (cuDNN autotuning, TensorRT tactics), which moves block means by a fraction of a level.
DEFAULT_TOLERANCE = 2
FRAME_NAME, FRAME_GLOB = "{:06d}.png", "[0-9]" * 6 + ".png"  # --export-frames: 000000.png, 000001.png, ...
# launch.py's --export-size default: three 256x128 panes side by side are 768x142, a thumbnail on any
# screen a video is watched on; 1280 wide is the smallest HD frame.
DEFAULT_EXPORT_FIT = (1280, None)


@dataclass
class ExportResult:
    frames: int
    size: tuple[int, int]  # (width, height) of the side-by-side frame
    out_mp4: Path | None
    frames_dir: Path | None
    seconds: float


@dataclass
class DeterminismReport:
    frames: int  # frames compared
    exact: int  # frames whose bytes match the recording exactly (sha256)
    max_abs_diff: int  # largest thumbnail difference in grey levels
    tolerance: int
    ok: bool
    notes: list[str] = field(default_factory=list)


def caption_text(renderer: Any) -> str:
    return f"{renderer.model_name} | {renderer.backend_name} {renderer.device_name} {renderer.precision}"


def _draw_caption(strip: np.ndarray, texts: list[tuple[int, str]]) -> None:
    image = Image.fromarray(strip)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for x, text in texts:
        draw.text((x + 3, 1), text, fill=(235, 235, 235), font=font)
    strip[...] = np.asarray(image)


def side_by_side(labels: np.ndarray, render: np.ndarray, engine: np.ndarray | None = None,
                 caption: str | None = None, frame_index: int | None = None) -> np.ndarray:
    """labels (H, W) uint8 | render (H, W, 3) | engine (H, W, 3) or absent, with an optional caption strip."""
    panels = [colorize(labels), render] + ([engine] if engine is not None else [])
    height, width = render.shape[:2]
    panels = [p if p.shape[:2] == (height, width) else _nearest(p, width, height) for p in panels]
    body = np.concatenate(panels, axis=1)
    if caption is None:
        return body
    strip = np.full((14, body.shape[1], 3), 24, dtype=np.uint8)
    texts = [(0, "labels" + (f" #{frame_index}" if frame_index is not None else "")), (width, caption)]
    if engine is not None:
        texts.append((2 * width, "engine"))
    _draw_caption(strip, texts)
    return np.concatenate([strip, body], axis=0)


def _nearest(image: np.ndarray, width: int, height: int) -> np.ndarray:
    rows = np.arange(height) * image.shape[0] // height
    cols = np.arange(width) * image.shape[1] // width
    return image[rows][:, cols]


# What imageio_ffmpeg.read_frames raises for a damaged mp4: OSError when ffmpeg cannot read its header
# ("Could not load meta information"), RuntimeError when a frame cannot be decoded.
DECODE_ERRORS = (OSError, RuntimeError, ValueError)


class EngineFrames:
    """The engine images of a session without rgb PNGs, decoded from engine.mp4 in record order.

    Records say which ticks reached the video (``video.engine``); a tick whose frame was dropped shows
    the previous one (blank before the first), and a video cut short by a crash shows a blank column
    from there on: every side-by-side frame keeps one width, which the mp4 stream needs. engine.mp4 is a
    viewing copy: a damaged one costs the engine column (a one-line warning), never the export (it used
    ffmpeg's whole log). It is opened on the first frame without an rgb PNG, so a
    session that has them never reads it.
    """

    def __init__(self, replay: ReplaySource) -> None:
        self.replay, self.path = replay, replay.path / ENGINE_MP4
        self.last: np.ndarray | None = None
        self.decoded = 0
        self._frames = None
        self._opened = False

    def get(self, position: int) -> np.ndarray | None:
        if not self._opened:
            self._opened = True
            self._open()
        if self._frames is not None and self.replay.record(position).get("video", {}).get("engine"):
            self._next()
        return self.last

    def _open(self) -> None:
        if not self.path.is_file() or self.replay.record(0).get("video", {}).get("engine") is None:
            return  # the session has no engine video: no engine column
        frames = imageio_ffmpeg.read_frames(str(self.path))
        try:
            meta = next(frames)
        except DECODE_ERRORS as error:
            self._warn(error, "the export goes on without the engine column")
            return
        self._frames, self._shape = frames, (meta["size"][1], meta["size"][0], 3)
        width, height = self.replay.session.size
        self.last = np.zeros((height, width, 3), np.uint8)

    def _next(self) -> None:
        try:
            raw = next(self._frames, None)
        except DECODE_ERRORS as error:  # damaged past this point: the frames before it were good
            self._warn(error, "the engine column is blank from there on", f" after {self.decoded} frames")
            raw = None
        if raw is None:
            self.close()
            self.last = np.zeros_like(self.last)
            return
        width, height = self.replay.session.size
        self.last = np.frombuffer(raw, np.uint8).reshape(self._shape)[:height, :width]
        self.decoded += 1

    def _warn(self, error: BaseException, what: str, when: str = "") -> None:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        # tqdm.write: a plain print would cut through the progress bar
        tqdm.write(f"warning: {self.path} cannot be decoded{when} ({reason.rstrip(':')}); {what}", file=sys.stderr)

    def close(self) -> None:
        frames, self._frames = self._frames, None
        if frames is not None:
            frames.close()


def fitted_size(size: tuple[int, int], fit: tuple[int, int | None]) -> tuple[int, int]:
    """The largest frame of ``size``'s aspect inside ``fit`` (width, height or None: any height), its
    sides even, as H.264's 4:2:0 chroma needs."""
    scale = min(fit[0] / size[0], fit[1] / size[1] if fit[1] else float("inf"))
    return tuple(max(2, round(side * scale / 2) * 2) for side in size)


def _scaled(image: np.ndarray, fit: tuple[int, int | None] | None) -> np.ndarray:
    if fit is None or (size := fitted_size((image.shape[1], image.shape[0]), fit)) == image.shape[1::-1]:
        return image
    # Nearest when enlarging keeps the label map's class edges sharp; a box filter when shrinking.
    grows = size[0] >= image.shape[1]
    return np.asarray(Image.fromarray(image).resize(size, Image.NEAREST if grows else Image.BOX))


def _replay_for(session_dir: str | Path, renderer: Any) -> ReplaySource:
    replay = ReplaySource(session_dir)
    size = tuple(renderer.size)
    return replay if size == tuple(replay.size) else ReplaySource(session_dir, size=size)


def export_session(session_dir: str | Path, renderer: Any, out_mp4: str | Path | None = None,
                   frames_dir: str | Path | None = None, caption: bool = True, fps: float | None = None,
                   progress: bool = True, fit: tuple[int, int | None] | None = None) -> ExportResult:
    """Render every recorded frame through ``renderer`` into a side-by-side mp4 and/or PNG frames,
    scaled to ``fit`` (fitted_size) when given, else at the renderer's size.

    The session is resampled to the renderer's size when they differ (ReplaySource(size=...)).
    Outputs are written under partial names (see above) and moved into place only when every frame is
    done: a failure or Ctrl+C leaves a previous export as it was, and raises with a note (``__notes__``)
    saying where the frames rendered so far are. ``frames_dir`` then holds this export's frames only:
    numbered PNGs of an earlier, longer export there are deleted (a mix of two exports would pass for
    one); its other files are left alone.
    Raises SessionFormatError for a bad session and RuntimeError when the video cannot be written.
    """
    if out_mp4 is None and frames_dir is None:
        raise ValueError("export_session needs out_mp4 and/or frames_dir (where to write the frames)")
    start = time.perf_counter()
    replay = _replay_for(session_dir, renderer)
    mp4_part = frames_part = None
    if out_mp4 is not None:
        out_mp4 = Path(out_mp4)
        out_mp4.parent.mkdir(parents=True, exist_ok=True)
        mp4_part = partial_file(out_mp4)
        mp4_part.unlink(missing_ok=True)  # what an earlier failed export left
    if frames_dir is not None:
        frames_dir = Path(frames_dir)
        frames_part = partial_folder(frames_dir)
        start_partial_folder(frames_part, FRAME_GLOB)
    partials = [(part, target) for part, target in ((mp4_part, out_mp4), (frames_part, frames_dir))
                if part is not None]
    # check_meta made "fps" a positive number or null; the recorder always writes one, so null (or none)
    # comes only from a session made by hand: 20, CARLA's usual 0.05 s step
    stream = VideoStream(mp4_part, fps or float(replay.meta.get("fps") or 20.0)) if mp4_part else None
    text = caption_text(renderer) if caption else None
    renderer.reset()
    size = (0, 0)
    count = 0
    engine = EngineFrames(replay)
    try:
        try:
            for frame in tqdm(replay, total=len(replay), desc="export", unit="frame", disable=not progress):
                rgb = frame.rgb if frame.rgb is not None else engine.get(replay.position)
                image = _scaled(side_by_side(frame.labels, renderer.render(frame), rgb, text, frame.index), fit)
                size = (image.shape[1], image.shape[0])
                if stream is not None and not stream.write(image):
                    raise RuntimeError(f"export to {out_mp4} failed: {stream.error or 'frame size changed'}")
                if frames_part is not None:
                    Image.fromarray(image).save(frames_part / FRAME_NAME.format(count), compress_level=1)
                count += 1
        finally:
            engine.close()
            if stream is not None:
                stream.close()
        if stream is not None and stream.error:
            raise RuntimeError(f"export to {out_mp4} failed: {stream.error}")
    except BaseException as error:  # Ctrl+C too: say what was kept, and where
        failed = (mp4_part,) if stream is not None and stream.error else ()  # its frame count is unknown
        error.add_note(kept_note(count, partials, FRAME_GLOB, failed))
        raise
    if mp4_part is not None:
        os.replace(mp4_part, out_mp4)
    if frames_part is not None:
        commit_folder(frames_part, frames_dir, FRAME_GLOB)
    return ExportResult(count, size, out_mp4, frames_dir, time.perf_counter() - start)


def check_determinism(session_dir: str | Path, renderer: Any, tolerance: int = DEFAULT_TOLERANCE,
                      progress: bool = False) -> DeterminismReport:
    """Replay the session through ``renderer`` and compare each render with the recorded fingerprint.

    Comparison starts at the first recorded cut (a recording begun mid-drive had history the replay
    cannot know). ``ok`` when every compared thumbnail is within ``tolerance`` grey levels.
    """
    replay = ReplaySource(session_dir)
    if tuple(renderer.size) != tuple(replay.size):
        raise ValueError(f"the determinism check needs the recorded size {replay.size}, "
                         f"the renderer is {renderer.size}")
    ran = {"backend": renderer.backend_name, "device": renderer.device_name, "precision": renderer.precision}
    notes = [f"session {key} {replay.meta[key]!r} != renderer {value!r}"
             for key, value in ran.items() if key in replay.meta and replay.meta[key] != value]
    revision = replay.meta.get("forward_revision", 1)  # sessions before the key were rendered by revision 1
    if revision != FORWARD_REVISION:
        notes.append(f"session rendered by network revision {revision}, this code runs revision "
                     f"{FORWARD_REVISION} (neural_render.model.FORWARD_REVISION): renders differ by design")
    records = [replay.record(i) for i in range(len(replay))]
    first = next((i for i, r in enumerate(records) if r["cut"]), None)
    if first is None or first > 0:
        notes.append("recording began mid-drive: frames before the first cut are not compared")
    renderer.reset()
    compared = exact = worst = missing = 0
    for position, frame in enumerate(tqdm(replay, total=len(replay), desc="determinism",
                                          disable=not progress)):
        image = renderer.render(frame)
        recorded = records[position].get("render")
        if first is None or position < first:
            continue
        if recorded is None:
            missing += 1
            continue
        digest = render_digest(image)
        compared += 1
        exact += digest["sha256"] == recorded["sha256"]
        diff = np.abs(digest_thumb(digest).astype(np.int16) - digest_thumb(recorded).astype(np.int16))
        worst = max(worst, int(diff.max()))
    if missing:
        notes.append(f"{missing} frames were recorded without a render")
    return DeterminismReport(compared, exact, worst, tolerance, compared > 0 and worst <= tolerance, notes)


# -- partial outputs ---------------------------------------------------------------------------------

def partial_file(target: Path) -> Path:
    """out.mp4 -> out.partial.mp4 (the suffix stays last: ffmpeg picks the container from it)."""
    return target.with_name(f"{target.stem}.partial{target.suffix}")


def partial_folder(target: Path) -> Path:
    """frames -> frames/partial-export (the frame glob of frames/ does not look into it)."""
    return target / "partial-export"


def start_partial_folder(folder: Path, frame_glob: str) -> None:
    """Make the partial folder, without the frames a previous failed export left there."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(frame_glob):
        old.unlink()


def commit_folder(partial: Path, target: Path, frame_glob: str) -> None:
    """Move the new frames over the target's, then drop the target's frames beyond the new count (a
    longer earlier export's tail). Each move replaces one file atomically, so every frame there is a
    whole old or a whole new one at any moment; the target's other files are left alone."""
    target.mkdir(parents=True, exist_ok=True)
    new = {frame.name for frame in partial.glob(frame_glob)}
    for name in sorted(new):
        os.replace(partial / name, target / name)
    for old in target.glob(frame_glob):
        if old.name not in new:
            old.unlink()
    try:
        partial.rmdir()
    except OSError:  # someone put another file there: leave it
        pass


def kept_note(frames: int, partials: list[tuple[Path, Path]], frame_glob: str,
              failed: tuple[Path, ...] = ()) -> str:
    """What a failed or interrupted export left, for its one-line message. partials: (partial, target)
    pairs. With no frame rendered the partial outputs are removed: there is nothing to keep. ``failed``:
    partials whose writer failed (ffmpeg on a full disk): they hold fewer frames than were rendered, and
    how many is not known here, so no count is promised for them.
    """
    present = [(partial, target) for partial, target in partials if partial.exists()]
    if frames == 0 or not present:
        for partial, _ in present:
            _remove_empty(partial)
        return "nothing was exported, no previous result was touched"
    whole = [str(partial) for partial, _ in present if partial not in failed]
    cut = [str(partial) for partial, _ in present if partial in failed and _has_data(partial)]
    said = [f"the {frames} frames exported before it are in {' and '.join(whole)}"] if whole else []
    said += [f"what ffmpeg wrote before it failed is in {' and '.join(cut)}"] if cut else []
    previous = [str(target) for _, target in present if _holds_result(target, frame_glob)]
    if previous:
        said.append(f"{' and '.join(previous)} {'is' if len(previous) == 1 else 'are'} as before")
    return "; ".join(said if whole or cut else ["nothing was exported", *said])


def _has_data(partial: Path) -> bool:
    """A failed writer's file with nothing in it is removed rather than pointed to."""
    if partial.is_file() and partial.stat().st_size == 0:
        _remove_empty(partial)
        return False
    return True


def _holds_result(target: Path, frame_glob: str) -> bool:
    """A previous export: the file, or a folder with frames (the up-front check makes it when missing)."""
    return target.is_file() or next(target.glob(frame_glob), None) is not None


def _remove_empty(partial: Path) -> None:
    try:
        if partial.is_dir():
            partial.rmdir()  # only when empty
        else:
            partial.unlink()
    except OSError:
        pass
