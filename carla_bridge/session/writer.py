"""Writing one tick to disk (FrameSink), and the in-process writer thread (SessionWriter).

Every disk operation of a recording happens in a FrameSink, which runs either in SessionWriter, a thread
of the game process (the default), or in the writer process (procwriter.py, ``writer="process"``).
Per frame, in this order (crash consistency, DESIGN.md "Sessions"):
  1. each lossless file is written to ``name.tmp`` and renamed into place (a reader never sees half a PNG);
  2. the render/engine images go to their ffmpeg pipes (lossy viewing copies; may be cut by a crash);
  3. the frames.jsonl line is appended with one write() call.
So a line exists only when its files are complete: after kill -9 the session is readable up to its last
line, and a half-written last line (killed inside write) is skipped by the reader.
A write error on a lossless file stops the recording (``error`` says where and why); a video error only
stops that video (noted in session.json) because the lossless files are the source of truth.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from carla_bridge.session.format import (
    ENGINE_MP4, FRAMES_JSONL, RENDER_MP4, encode_grey_png, frame_file, render_digest,
)
from carla_bridge.session.video import BACKGROUND_NICE, VideoStream


@dataclass
class FramePacket:
    """One tick handed from the drive to the writer: the record and private copies of its arrays."""

    position: int
    record: dict[str, Any]
    arrays: dict[str, np.ndarray]  # kind ('labels', 'flow', 'depth', 'rgb') -> array to store losslessly
    render: np.ndarray | None = None  # rendered frame, for the digest (always) and render.mp4 (video)
    engine: np.ndarray | None = None  # engine rgb for engine.mp4, or None
    video: bool = True  # False when the drive dropped this tick's video frames (writer behind)
    nbytes: int = 0

    def copied(self) -> FramePacket:
        """Private copies of the arrays (sources and renderers may reuse their buffers next tick); the
        engine image is copied once even when it is also the lossless rgb."""
        copies = {id(a): a.copy() for a in (*self.arrays.values(), self.render, self.engine) if a is not None}
        return FramePacket(
            self.position, self.record, {k: copies[id(a)] for k, a in self.arrays.items()},
            None if self.render is None else copies[id(self.render)],
            None if self.engine is None else copies[id(self.engine)], self.video, self.nbytes,
        )


def json_default(value: Any) -> Any:
    """Let json.dumps take numpy scalars/arrays (sources may hand np.float32 poses)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def describe_os_error(exc: BaseException, directory: Path | None = None) -> str:
    """Say why a write failed and what to do, for recorder.error."""
    code = getattr(exc, "errno", None)
    if code is None and directory is not None:  # numpy reports a short write without an errno
        try:
            stat = os.statvfs(directory)
            if stat.f_bavail * stat.f_frsize < (1 << 20):
                code = errno.ENOSPC
        except OSError:
            pass
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full: free some space or record to another disk"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the folder is not writable: choose another with --record DIR"
    return str(exc)


def run_hook(spec: str | None) -> None:
    """Call ``"module:function"`` in the writer before its first frame (tests inject disk faults with it,
    which a monkeypatch in the test process cannot do once the writer is another process)."""
    if spec:
        import importlib

        module, _, name = spec.partition(":")
        getattr(importlib.import_module(module), name)()


@dataclass
class WriterState:
    """What the writer reports back to the recorder (read from the drive thread; plain attributes)."""

    frames_written: int = 0
    pending_bytes: int = 0
    pending_video: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)


class FrameSink:
    """Writes packets into a session folder in the crash-consistent order above; keeps no thread."""

    def __init__(self, directory: Path, fps: float, video: bool, crf: int = 18,
                 nice: int = BACKGROUND_NICE) -> None:
        self.directory = directory
        self.frames_written = 0
        self.error: str | None = None
        self.notes: list[str] = []
        self.streams = (
            {"render": VideoStream(directory / RENDER_MP4, fps, crf, nice=nice),
             "engine": VideoStream(directory / ENGINE_MP4, fps, crf, nice=nice)}
            if video else {}
        )
        self._fd = os.open(directory / FRAMES_JSONL, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, packet: FramePacket) -> None:
        """Write one tick unless the recording already stopped; errors end up in ``error``."""
        if self.error is not None:
            return
        try:
            self._write(packet)
        except OSError as exc:
            self.error = (
                f"recording stopped at frame {packet.position}: cannot write in {self.directory}: "
                f"{describe_os_error(exc, self.directory)} ({exc.strerror or exc}); "
                f"the {self.frames_written} frames before it are complete"
            )
        except Exception as exc:  # a bug must not kill the drive either; say what happened
            self.error = f"recording stopped at frame {packet.position}: {exc!r}"

    def video_frames(self) -> dict[str, int]:
        return {name: s.frames for name, s in self.streams.items() if s.frames}

    def _write(self, packet: FramePacket) -> None:
        for kind, array in packet.arrays.items():
            path = frame_file(self.directory, kind, packet.position)
            tmp = path.with_name(path.name + ".tmp")
            if kind == "labels":
                tmp.write_bytes(encode_grey_png(array))
            elif path.suffix == ".png":
                from PIL import Image

                Image.fromarray(array).save(tmp, format="PNG", compress_level=1)
            else:
                with open(tmp, "wb") as handle:
                    np.save(handle, array, allow_pickle=False)
            os.replace(tmp, path)
        record = packet.record
        if packet.render is not None:
            record["render"] = render_digest(packet.render)
        in_video = {}
        for name, image in (("render", packet.render), ("engine", packet.engine)):
            if image is not None and name in self.streams:
                in_video[name] = packet.video and self.streams[name].write(image)
        record["video"] = in_video
        line = (json.dumps(record, default=json_default, separators=(",", ":")) + "\n").encode()
        view = memoryview(line)
        while view:  # one write() in practice; loop in case the kernel takes part of it
            view = view[os.write(self._fd, view):]
        self.frames_written += 1

    def finish(self) -> None:
        """Finalize the videos (their notes go to ``notes``) and make frames.jsonl durable."""
        for stream in self.streams.values():
            stream.close()
            if stream.error:
                self.notes.append(stream.error)
        try:
            os.fsync(self._fd)
        except OSError:
            pass
        os.close(self._fd)


class SessionWriter(threading.Thread):
    """The writer as a thread of the game process (the default; for why, see recorder.py).

    It shares the GIL with the drive, yet measured cheaper for the drive than the writer process on the
    2-core box (figures in recorder.py). A likely reason, not proven: a thread waiting for the GIL is not
    runnable, so its work lands in the drive's C calls and idle gaps, whereas a process competes for the
    CPU the moment a frame arrives; the total CPU per frame is the same.

    Consumes FramePackets from an unbounded queue; the recorder bounds it by bytes (see recorder.py).
    """

    def __init__(self, directory: Path, fps: float, video: bool, crf: int = 18,
                 hook: str | None = None) -> None:
        super().__init__(name=f"session-writer:{directory.name}", daemon=True)
        self.directory = directory
        self.queue: queue.SimpleQueue[FramePacket | None] = queue.SimpleQueue()
        self.state = WriterState()
        self._lock = threading.Lock()
        self._hook = hook
        self.sink = FrameSink(directory, fps, video, crf)

    def can_take(self) -> bool:
        return True  # unbounded queue: the recorder's byte limit bounds it

    def put(self, packet: FramePacket | None) -> None:
        if packet is not None:
            packet = packet.copied()
            with self._lock:
                self.state.pending_bytes += packet.nbytes
                self.state.pending_video += packet.video
        self.queue.put(packet)

    def poll(self) -> None:
        """Nothing to collect: the thread updates ``state`` itself (same interface as ProcessWriter)."""

    def wait_ready(self, timeout_s: float) -> bool:
        return self.is_alive()

    def finish(self) -> dict[str, int]:
        """Flush the queue, stop the thread; return the frames per video stream."""
        self.put(None)
        self.join()
        return self.sink.video_frames()

    def run(self) -> None:
        # The thread itself keeps normal priority: it takes the GIL between C calls, and a niced thread
        # descheduled while holding it would stall the drive (priority inversion); only ffmpeg is niced.
        try:
            run_hook(self._hook)
            while (packet := self.queue.get()) is not None:
                try:
                    self.sink.write(packet)
                    self.state.frames_written = self.sink.frames_written
                    self.state.error = self.sink.error
                finally:
                    with self._lock:
                        self.state.pending_bytes -= packet.nbytes
                        self.state.pending_video -= packet.video
        finally:
            self.sink.finish()
            self.state.notes.extend(self.sink.notes)
