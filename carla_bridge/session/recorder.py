"""SessionRecorder: the drive-side half of recording. Copies a tick and queues it; never blocks.

The disk work happens in a writer thread of this process (writer.py, which says why a thread).

Back-pressure policy (the drive must never stall on the disk, and lossless data is never dropped silently):
- The render/engine video frames of a tick are dropped first when more than ``max_video_backlog`` ticks
  with video wait in the queue (the encoder is behind); the record says ``"video": {}`` for that tick, so
  the mp4 is only a viewing copy and frames.jsonl + PNGs stay complete.
- Labels, flow, depth, rgb and the jsonl line are never dropped one by one: a frame with a line has all its
  files. If the writer falls more than ``max_backlog_mb`` behind (the disk is slower than the drive for
  seconds on end), the recording stops with a message in ``error`` rather than blocking the drive or
  leaving holes; everything recorded before that point is a valid session.
- Disk errors (full disk, unwritable folder) likewise stop the recording with ``error`` set; ``add`` never
  raises, so the drive goes on. The game shows ``error`` on its HUD.
- A full disk must not cost the close: the closing session.json (closed, frames, why it ended) needs room
  when there is none left, so the start sets that room aside in a reserve file (CLOSE_RESERVE) and the
  close deletes it just before rewriting session.json.

The frames are trusted: the Renderer checked each one where it entered, at the size this recorder was
made for (ARCHITECTURE.md, "One tick of the drive").
"""

from __future__ import annotations

import atexit
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from carla_bridge.core.frames import Control, SceneFrame
from carla_bridge.session.format import (CLOSE_RESERVE, FORMAT_VERSION, FRAME_FILES, FRAMES_JSONL, RESERVED_KEYS,
                                         SESSION_JSON, atomic_write_json, file_sha256, git_commit, project_version)
from carla_bridge.session.writer import FramePacket, PacketWriter, SessionWriter, describe_os_error

# The room kept for the closing session.json: it is 1-2 kB (its error and notes lines are a few hundred
# characters each), and its atomic rewrite holds a second copy until the rename; 64 KiB covers that with
# the file system's block rounding many times over. Random bytes: a compressing file system (btrfs, ZFS)
# would store zeros in almost nothing.
CLOSE_RESERVE_BYTES = 64 * 1024


def _timings_ms(timings: dict[str, Any]) -> dict[str, float]:
    """Stage timings in ms; a (start_ns, end_ns) pair (Renderer.last_timings style) becomes its length.
    Anything else is left out: a malformed timing must not stop a recording."""
    out = {}
    for name, value in timings.items():
        if isinstance(value, (tuple, list)) and len(value) == 2:
            value = (value[1] - value[0]) / 1e6
        if isinstance(value, (int, float, np.number)) and np.isfinite(value):
            out[str(name)] = round(float(value), 3)
    return out


def tick_record(position: int, frame: SceneFrame, control: Control, timings: dict[str, Any],
                files: list[str]) -> dict[str, Any]:
    """The frames.jsonl record of a tick (format.py) before the writer adds its render digest."""
    return {
        "position": position, "index": int(frame.index), "time_s": float(frame.time_s),
        "wall_time": time.time(), "ego": frame.ego.as_dict(), "control": control.as_dict(),
        "autopilot": bool(control.autopilot), "cut": bool(frame.cut),
        "timings_ms": _timings_ms(timings), "files": files,
    }


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class SessionRecorder:
    """Record ticks into a session folder (format: carla_bridge/session/format.py), or with
    ``record_format="mcap"`` into one MCAP file at ``directory`` (mcap_format.py; no mp4s: its /render
    and /engine channels are the viewing copies).

    meta: the caller's description (model, model_sha256 (computed from model_path/model when it names a
    file), backend, device, precision, source, source_settings, seed, delta_s...); stored in session.json.
    size: (width, height) of the label maps. fps of the mp4s: ``fps`` or meta["fps"] or 1/meta["delta_s"]
    or 20. record_rgb: store engine rgb as lossless PNGs (training data). video: write render.mp4 and,
    when frames carry rgb, engine.mp4. Flow is stored as float32 .npy (lossless, exact replay).
    """

    def __init__(
        self,
        directory: str | Path,
        meta: dict[str, Any],
        size: tuple[int, int] = (512, 256),
        record_rgb: bool = False,
        video: bool = True,
        *,
        record_flow: bool = True,
        record_depth: bool = False,
        fps: float | None = None,
        max_backlog_mb: float = 256.0,
        max_video_backlog: int = 30,
        crf: int = 18,
        record_format: str = "folder",
    ) -> None:
        self.path = Path(directory).absolute()  # where it was started, whatever the working folder later
        self.record_format = record_format
        self.size = tuple(size)
        self.record_rgb, self.video = bool(record_rgb), bool(video)
        self.record_flow, self.record_depth = bool(record_flow), bool(record_depth)
        if record_format == "mcap":  # the engine image goes to the lossless /engine channel; no mp4 to drop frames of
            self.record_rgb, self.video = self.record_rgb or self.video, False
        self.fps = float(fps or meta.get("fps") or (1.0 / meta["delta_s"] if meta.get("delta_s") else 20.0))
        self.max_backlog_bytes = int(max_backlog_mb * 2**20)
        self.max_video_backlog = int(max_video_backlog)
        self.frames_queued = 0
        self.video_frames_dropped = 0
        self._closed = False
        self._start_error: str | None = None
        self._drive_error: str | None = None  # set by add(); frames queued before it are still written
        self._writer: PacketWriter | None = None
        self._reserve: Path | None = None  # CLOSE_RESERVE, once _start made it
        # Why the drive ended when it was not by choice (the CARLA server lost, say), for session.json:
        # "error" is about the recording itself, which stays whole then.
        self.ended_by: str | None = None
        self.meta = self._build_meta(dict(meta))
        self._made: list[Path] = []  # folders _start created, parents first
        try:
            self._start(crf)
        except OSError as exc:
            self._start_error = f"recording not started in {self.path}: {describe_os_error(exc)} ({exc})"
            self._release_reserve()
            self._remove_empty_made()
        if self._writer is not None:
            atexit.register(self.close)

    # -- public -----------------------------------------------------------------------------------
    @property
    def error(self) -> str | None:
        """Why the recording stopped (disk full, unwritable folder, writer too far behind), or None."""
        if self._start_error or self._drive_error:
            return self._start_error or self._drive_error
        return None if self._writer is None else self._writer.error

    @property
    def frames_written(self) -> int:
        """Ticks whose files and frames.jsonl line are on disk (lags frames_queued by the queue)."""
        return 0 if self._writer is None else self._writer.frames_written

    @property
    def recording(self) -> bool:
        return not self._closed and self.error is None

    def add(
        self,
        frame: SceneFrame,
        control: Control,
        rendered: np.ndarray | None,
        timings: dict[str, float] | None = None,
    ) -> None:
        """Queue one tick. Returns at once; never raises (problems end up in ``error``)."""
        if self._closed or self.error is not None or self._writer is None:
            return
        try:
            self._add(frame, control, rendered, timings or {})
        except Exception as exc:  # bad frame or bug: stop recording, keep driving
            self._drive_error = f"recording stopped at frame {self.frames_queued}: {exc}"

    def close(self) -> None:
        """Flush the queue, finalize the videos and rewrite session.json with the totals. Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        writer = self._writer
        if writer is None:
            return
        video = writer.finish()
        self._release_reserve()  # after the videos: a failed mp4 is removed and frees its room too
        self.meta.update(
            frames=writer.frames_written, ended_at=_now_iso(), closed=True, error=self.error,
            ended_by=writer.stopped_by or self.ended_by,  # a full disk ended it before the drive did
            video=video, video_frames_dropped=self.video_frames_dropped, notes=list(writer.notes),
        )
        try:
            writer.save_meta(self.meta)
        except OSError as exc:
            writer.error = writer.error or (
                f"the session's meta could not be updated at close: {describe_os_error(exc)}; "
                "every complete frame before it is kept"
            )

    def discard_if_empty(self) -> bool:
        """Close, and when no frame was ever handed over remove what the start wrote (session.json, an
        empty frames.jsonl, the empty folders it made): a 0-frame session (R pressed twice within one
        tick) is one replay refuses. Anything else found in the folder is left in place.
        True when the recording was discarded; False (just closed) when it holds frames or never started
        (a refused start wrote nothing of its own: the folder may hold another session)."""
        self.close()
        if self.frames_queued or self._writer is None:
            return False
        if self.record_format == "mcap":
            self.path.unlink(missing_ok=True)
        for name in (SESSION_JSON, FRAMES_JSONL):
            (self.path / name).unlink(missing_ok=True)
        self._remove_empty_made()
        return True

    def __enter__(self) -> SessionRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------
    def _build_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        for key in RESERVED_KEYS:
            meta.pop(key, None)
        model_path = meta.get("model_path") or meta.get("model")
        if model_path and "model_sha256" not in meta and Path(str(model_path)).is_file():
            meta["model_sha256"] = file_sha256(model_path)
        meta.update(
            format_version=FORMAT_VERSION, project_version=project_version(), git_commit=git_commit(),
            started_at=_now_iso(), size=list(self.size), fps=self.fps, closed=False,
            record={"rgb": self.record_rgb, "flow": self.record_flow, "depth": self.record_depth,
                    "video": self.video, "writer": "thread", "format": self.record_format},
        )
        return meta

    def _start(self, crf: int) -> None:
        if self.record_format == "mcap":
            self._start_mcap()
            return
        self._made = [p for p in (*reversed(self.path.parents), self.path) if not p.exists()]
        self.path.mkdir(parents=True, exist_ok=True)
        if (self.path / SESSION_JSON).exists():
            self._start_error = (
                f"recording not started: {self.path} already holds a session; choose a new folder"
            )
            return
        kinds = ["labels"] + [k for k, on in (("flow", self.record_flow), ("depth", self.record_depth),
                                               ("rgb", self.record_rgb)) if on]
        for kind in kinds:
            folder = self.path / FRAME_FILES[kind][0]
            if not folder.exists():
                self._made.append(folder)
            folder.mkdir(exist_ok=True)
        # Written before the writer starts: an unwritable folder or a full disk fails here, with nothing
        # to stop.
        self._reserve = self.path / CLOSE_RESERVE
        with open(self._reserve, "wb") as reserve:
            reserve.write(os.urandom(CLOSE_RESERVE_BYTES))
        atomic_write_json(self.path / SESSION_JSON, self.meta)
        self._writer = SessionWriter(self.path, self.fps, self.video, crf)
        self._writer.start()

    def _release_reserve(self) -> None:
        reserve, self._reserve = self._reserve, None
        if reserve is not None:
            reserve.unlink(missing_ok=True)

    def _start_mcap(self) -> None:
        from carla_bridge.session.mcap_writer import McapSessionWriter  # an optional package: the mcap extra

        self._made = [p for p in reversed(self.path.parents) if not p.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._start_error = f"recording not started: {self.path} already exists; choose a new file name"
            return
        self._writer = McapSessionWriter(self.path, self.meta)  # writes the meta: an unwritable folder fails here
        self._writer.start()

    def _remove_empty_made(self) -> None:
        """After a failed start (a full disk) or a discarded empty recording, remove the folders _start made
        that are still empty: they held no recording, and a session folder with empty labels/ and flow/
        looked like one."""
        for folder in reversed(self._made):
            try:
                folder.rmdir()  # refuses a folder that holds anything
            except OSError:
                pass

    def _add(self, frame: SceneFrame, control: Control, rendered: np.ndarray | None,
             timings: dict[str, float]) -> None:
        # No copies here: the writer copies in put().
        arrays = {"labels": frame.labels}
        if self.record_flow and frame.flow is not None:
            arrays["flow"] = frame.flow
        if self.record_depth and frame.depth is not None:
            arrays["depth"] = frame.depth
        engine = frame.rgb
        if self.record_rgb and engine is not None:
            arrays["rgb"] = engine

        writer = self._writer
        has_video = self.video and (rendered is not None or engine is not None)
        video = has_video and writer.pending_video < self.max_video_backlog
        if has_video and not video:
            self.video_frames_dropped += 1
        nbytes = sum(a.nbytes for a in arrays.values()) + (rendered.nbytes if rendered is not None else 0)
        nbytes += engine.nbytes if engine is not None and "rgb" not in arrays else 0
        if writer.pending_bytes + nbytes > self.max_backlog_bytes:
            raise RuntimeError(
                f"the writer fell {writer.pending_bytes / 2**20:.0f} MB behind (the disk is slower than the "
                f"drive); recording stopped so the drive does not stall; frames before it are complete"
            )
        record = tick_record(self.frames_queued, frame, control, timings, list(arrays))
        writer.put(FramePacket(
            position=self.frames_queued, record=record, arrays=arrays, render=rendered,
            engine=engine if video else None, video=video, nbytes=nbytes,
        ))
        self.frames_queued += 1
