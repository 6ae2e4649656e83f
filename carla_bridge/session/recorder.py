"""SessionRecorder: the drive-side half of recording (contract 6). Copies a tick and queues it; never blocks.

The disk work happens in a writer thread of this process (writer.py; the default), or with
``writer="process"`` in a separate writer process fed through shared-memory slots (procwriter.py). The
thread stays the default because it measured cheaper for the drive on the shared 2-core box (bench.py,
512x256, cheap render loop, median of 3 runs: +4.2 % frame time with the thread, +11.6 % with the
process; add() 0.2 ms against 0.5 ms). The process is the choice where a killed game must still leave
every frame it handed over on disk.

Back-pressure policy (the drive must never stall on the disk, and lossless data is never dropped silently):
- The render/engine video frames of a tick are dropped first when more than ``max_video_backlog`` ticks
  with video wait in the queue (the encoder is behind); the record says ``"video": {}`` for that tick, so
  the mp4 is only a viewing copy and frames.jsonl + PNGs stay complete.
- Labels, flow, depth, rgb and the jsonl line are never dropped one by one: a frame with a line has all its
  files. If the writer falls more than ``max_backlog_mb`` behind (the disk is slower than the drive for
  seconds on end; with the writer process also when its shared slots are all in use), the recording
  stops with a message in ``error`` rather than blocking the drive or leaving holes; everything recorded
  before that point is a valid session (the writer process still writes every tick already handed over,
  even if the game then crashes).
- Disk errors (full disk, unwritable folder) likewise stop the recording with ``error`` set; ``add`` never
  raises, so the drive goes on. The game shows ``error`` on its HUD.
"""

from __future__ import annotations

import atexit
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from carla_bridge.core.frames import Control, SceneFrame
from carla_bridge.session.format import (
    FORMAT_VERSION, FRAME_FILES, FRAMES_JSONL, RESERVED_KEYS, SESSION_JSON, atomic_write_json,
    file_sha256, git_commit, project_version,
)
from carla_bridge.session.writer import FramePacket, SessionWriter, describe_os_error

WRITERS = ("process", "thread")


def default_session_dir(root: str | Path = "sessions") -> Path:
    """A fresh timestamped folder name under ``root`` for the R key (e.g. sessions/20250101-120000)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / stamp
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(root) / f"{stamp}-{suffix}"
    return path


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


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class SessionRecorder:
    """Record ticks into a session folder (format: carla_bridge/session/format.py).

    meta: the caller's description (model, model_sha256 (computed from model_path/model when it names a
    file), backend, device, precision, source, source_settings, seed, delta_s...); stored in session.json.
    size: (width, height) of the label maps. fps of the mp4s: ``fps`` or meta["fps"] or 1/meta["delta_s"]
    or 20. record_rgb: store engine rgb as lossless PNGs (training data). video: write render.mp4 and,
    when frames carry rgb, engine.mp4. Flow is stored as float32 .npy (lossless, exact replay).
    writer: "thread" (default) or "process" (module docstring). writer_hook: "module:function" called in
    the writer before its first frame (tests use it to simulate a failing disk).
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
        writer: str = "thread",
        writer_hook: str | None = None,
    ) -> None:
        if writer not in WRITERS:
            raise ValueError(f"SessionRecorder writer must be one of {WRITERS}, got {writer!r}")
        width, height = (int(v) for v in size)
        if width <= 0 or height <= 0:
            raise ValueError(f"SessionRecorder size must be positive (width, height), got {size!r}")
        self.path = Path(directory)
        self.size = (width, height)
        self.record_rgb, self.video = bool(record_rgb), bool(video)
        self.record_flow, self.record_depth = bool(record_flow), bool(record_depth)
        self.fps = float(fps or meta.get("fps") or (1.0 / meta["delta_s"] if meta.get("delta_s") else 20.0))
        self.max_backlog_bytes = int(max_backlog_mb * 2**20)
        self.max_video_backlog = int(max_video_backlog)
        self.frames_queued = 0
        self.video_frames_dropped = 0
        self._closed = False
        self._start_error: str | None = None
        self._drive_error: str | None = None  # set by add(); frames queued before it are still written
        self._writer: Any = None  # SessionWriter, or procwriter.ProcessWriter
        # Why the drive ended when it was not by choice (the CARLA server lost, say), for session.json:
        # "error" is about the recording itself, which stays whole then.
        self.ended_by: str | None = None
        self.writer_kind = writer
        self._hook = writer_hook
        self.meta = self._build_meta(dict(meta))
        self._made: list[Path] = []  # folders _start created, parents first
        try:
            self._start(crf)
        except OSError as exc:
            self._start_error = f"recording not started in {self.path}: {describe_os_error(exc)} ({exc})"
            self._remove_empty_made()
        if self._writer is not None:
            atexit.register(self.close)

    # -- public -----------------------------------------------------------------------------------
    @property
    def error(self) -> str | None:
        """Why the recording stopped (disk full, unwritable folder, writer too far behind), or None."""
        if self._start_error or self._drive_error:
            return self._start_error or self._drive_error
        if self._writer is None:
            return None
        if not self._closed:
            self._writer.poll()
        return self._writer.state.error

    @property
    def frames_written(self) -> int:
        """Ticks whose files and frames.jsonl line are on disk (lags frames_queued by the queue)."""
        if self._writer is None:
            return 0
        if not self._closed:
            self._writer.poll()
        return self._writer.state.frames_written

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

    def wait_ready(self, timeout_s: float = 10.0) -> bool:
        """Wait until the writer can take frames at full speed (a writer process takes a fraction of a
        second of CPU to start; a thread is ready at once). Optional: add() works before it."""
        if self._writer is None or self._closed:
            return False
        return self._writer.wait_ready(timeout_s)

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
        self.meta.update(
            frames=writer.state.frames_written, ended_at=_now_iso(), closed=True, error=self.error,
            ended_by=self.ended_by,
            video=video, video_frames_dropped=self.video_frames_dropped, notes=list(writer.state.notes),
        )
        try:
            atomic_write_json(self.path / SESSION_JSON, self.meta)
        except OSError as exc:
            writer.state.error = writer.state.error or (
                f"session.json could not be updated at close: {describe_os_error(exc)}; "
                "frames.jsonl still holds every complete frame"
            )

    def discard_if_empty(self) -> bool:
        """Close, and when no frame was ever handed over remove what the start wrote (session.json, an
        empty frames.jsonl, the empty folders it made): R pressed twice within one tick used to leave a
        0-frame session that replay then refused. Anything else found in the folder is left in place.
        True when the recording was discarded; False (just closed) when it holds frames or never started
        (a refused start wrote nothing of its own: the folder may hold another session)."""
        self.close()
        if self.frames_queued or self._writer is None:
            return False
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
                    "video": self.video},
        )
        return meta

    def _start(self, crf: int) -> None:
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
        self.meta["record"]["writer"] = self.writer_kind
        # Written before the writer starts: an unwritable folder fails here, with nothing to stop.
        atomic_write_json(self.path / SESSION_JSON, self.meta)
        note = None
        if self.writer_kind == "process":
            try:  # imported here: POSIX only (fcntl), and only this option needs it
                from carla_bridge.session.procwriter import ProcessWriter

                self._writer = ProcessWriter(
                    self.path, self.fps, self.video, crf, self.size, flow=self.record_flow,
                    depth=self.record_depth, engine=self.record_rgb or self.video,
                    max_bytes=self.max_backlog_bytes, hook=self._hook,
                )
            except (ImportError, OSError) as exc:  # no shared memory, no processes: a thread records
                self.writer_kind = "thread"
                note = f"writer process not started ({exc}); recorded with a writer thread"
        if self._writer is None:
            self._writer = SessionWriter(self.path, self.fps, self.video, crf, hook=self._hook)
            self._writer.start()
            self._writer.state.notes.extend([note] if note else [])
            self.meta["record"]["writer"] = "thread"  # session.json says so at close

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
        labels = frame.labels
        if labels.shape != (self.size[1], self.size[0]) or labels.dtype != np.uint8:
            raise ValueError(
                f"labels are {labels.shape} {labels.dtype}, the session is "
                f"{self.size[1]}x{self.size[0]} uint8 (height x width)"
            )
        # No copies here: the writer copies (into a shared slot, or privately for the thread) in put().
        arrays = {"labels": labels}
        if self.record_flow and frame.flow is not None:
            arrays["flow"] = np.asarray(frame.flow, dtype=np.float32)
        if self.record_depth and frame.depth is not None:
            arrays["depth"] = np.asarray(frame.depth, dtype=np.float32)
        engine = frame.rgb
        if self.record_rgb and engine is not None:
            arrays["rgb"] = engine
        render = np.asarray(rendered, dtype=np.uint8) if rendered is not None else None

        self._writer.poll()
        state = self._writer.state
        has_video = self.video and (render is not None or engine is not None)
        video = has_video and state.pending_video < self.max_video_backlog
        if has_video and not video:
            self.video_frames_dropped += 1
        nbytes = sum(a.nbytes for a in arrays.values()) + (render.nbytes if render is not None else 0)
        nbytes += engine.nbytes if engine is not None and "rgb" not in arrays else 0
        if state.pending_bytes + nbytes > self.max_backlog_bytes or not self._writer.can_take():
            raise RuntimeError(
                f"the writer fell {state.pending_bytes / 2**20:.0f} MB behind (the disk is slower than the "
                f"drive); recording stopped so the drive does not stall; frames before it are complete"
            )
        record = {
            "position": self.frames_queued, "index": int(frame.index), "time_s": float(frame.time_s),
            "wall_time": time.time(), "ego": frame.ego.as_dict(), "control": control.as_dict(),
            "autopilot": bool(control.autopilot), "cut": bool(frame.cut),
            "timings_ms": _timings_ms(timings),
            "files": list(arrays),
        }
        self._writer.put(FramePacket(
            position=self.frames_queued, record=record, arrays=arrays, render=render,
            engine=engine if video else None, video=video, nbytes=nbytes,
        ))
        self.frames_queued += 1
