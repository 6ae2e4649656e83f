"""The writer thread: every disk operation of a recording, off the drive's thread.

Per frame, in this order, so that a crash leaves a readable session:
  1. each lossless file is written whole (carla_bridge.core.files.atomic_file: a reader never sees half a PNG);
  2. the render/engine images go to their ffmpeg pipes (lossy viewing copies; may be cut by a crash);
  3. the frames.jsonl line is appended with one write() call.
So a line exists only when its files are complete: after kill -9 the session is readable up to its last
line, and a half-written last line (killed inside write) is skipped by the reader. Frames still in the
queue at a kill are lost; those before them are whole.
A write error on a lossless file stops the recording (``error`` says where and why, ``stopped_by`` says
"disk full" when it was) and removes what that frame left; a video error only stops that video (noted in
session.json) because the lossless files are the source of truth.

A thread, not a writer process: it shares the GIL with the drive, yet a process fed through shared
memory measured costlier for the drive on a 2-core box (512x256, cheap render loop, median of 3 runs:
+4.2 % frame time with the thread against +11.6 % with a process; add() 0.2 ms against 0.5 ms). A likely
reason: a thread waiting for the GIL is not runnable, so its work lands in the drive's C calls and idle
gaps, whereas a process competes for the CPU the moment a frame arrives; the total CPU per frame is the
same.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from carla_bridge.core.files import atomic_file
from carla_bridge.core.png import encode_png
from carla_bridge.session.format import (DISK_FULL, ENGINE_MP4, FRAME_FILES, FRAMES_JSONL, RENDER_MP4, SESSION_JSON,
                                         atomic_write_json, frame_file, render_digest)
from carla_bridge.session.video import VideoStream


@dataclass
class FramePacket:
    """One tick handed from the drive to the writer: the record and the arrays to write."""

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


def is_disk_full(exc: OSError, directory: Path | None = None) -> bool:
    """Whether a write failed for want of space (a full disk or quota)."""
    if exc.errno is None and directory is not None:  # numpy reports a short write without an errno
        try:
            stat = os.statvfs(directory)
            return stat.f_bavail * stat.f_frsize < (1 << 20)
        except OSError:
            return False
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def describe_os_error(exc: OSError, directory: Path | None = None) -> str:
    """Say why a write failed and what to do, for recorder.error."""
    if is_disk_full(exc, directory):
        return "the disk is full: free some space or record to another disk"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the folder is not writable: choose another with --record DIR"
    return str(exc)


class PacketWriter(threading.Thread):
    """Consumes FramePackets from an unbounded queue and writes them, one at a time, in a subclass's
    ``_write_files``; the recorder bounds the queue by bytes (recorder.py). The drive thread reads
    ``frames_written``, ``error``, ``pending_bytes`` and ``pending_video`` as plain attributes.
    ``directory`` is where the session goes (a write error names it)."""

    def __init__(self, directory: Path, name: str) -> None:
        super().__init__(name=f"session-writer:{name}", daemon=True)
        self.directory = directory
        self.frames_written = 0
        self.pending_bytes = 0
        self.pending_video = 0
        self.error: str | None = None
        self.stopped_by: str | None = None  # DISK_FULL when the disk filled up, for session.json's ended_by
        self.notes: list[str] = []
        self.queue: queue.SimpleQueue[FramePacket | None] = queue.SimpleQueue()
        self._lock = threading.Lock()

    def put(self, packet: FramePacket | None) -> None:
        """Queue a private copy of ``packet``; None ends the thread after the packets before it."""
        if packet is not None:
            packet = packet.copied()
            with self._lock:
                self.pending_bytes += packet.nbytes
                self.pending_video += packet.video
        self.queue.put(packet)

    def finish(self) -> dict[str, int]:
        """Flush the queue, stop the thread; return the frames per video stream (none here)."""
        self.put(None)
        self.join()
        return {}

    def run(self) -> None:
        # The thread itself keeps normal priority: it takes the GIL between C calls, and a niced thread
        # descheduled while holding it would stall the drive (priority inversion); only ffmpeg is niced.
        try:
            while (packet := self.queue.get()) is not None:
                try:
                    self._write(packet)
                finally:
                    with self._lock:
                        self.pending_bytes -= packet.nbytes
                        self.pending_video -= packet.video
        finally:
            self._close()

    def _write(self, packet: FramePacket) -> None:
        """Write one tick unless the recording already stopped; errors end up in ``error``."""
        if self.error is not None:
            return
        try:
            self._write_files(packet)
        except OSError as exc:
            self._discard(packet)
            why = exc.strerror or exc
            if is_disk_full(exc, self.directory):
                self.stopped_by = DISK_FULL
                self.error = (f"{DISK_FULL} after {self.frames_written} frames: frame {packet.position} does not "
                              f"fit in {self.directory} ({why}); the frames before it are complete: free some "
                              "space or record to another disk")
            else:
                self.error = (f"recording stopped at frame {packet.position}: cannot write in {self.directory}: "
                              f"{describe_os_error(exc, self.directory)} ({why}); "
                              f"the {self.frames_written} frames before it are complete")
        except Exception as exc:  # a bug must not kill the drive either; say what happened
            self._discard(packet)
            self.error = f"recording stopped at frame {packet.position}: {exc!r}"

    def _discard(self, packet: FramePacket) -> None:
        """Remove what a frame that failed left, where the format can (the folder's files and line)."""

    def _write_files(self, packet: FramePacket) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        """After the last packet, in the thread."""

    def save_meta(self, meta: dict[str, Any]) -> None:
        """Store the session's meta as updated at the close (after ``finish``)."""
        raise NotImplementedError


class SessionWriter(PacketWriter):
    """The folder format's writer: files, then the ffmpeg pipes, then the frames.jsonl line."""

    def __init__(self, directory: Path, fps: float, video: bool, crf: int = 18) -> None:
        super().__init__(directory, directory.name)
        self.streams = (
            {"render": VideoStream(directory / RENDER_MP4, fps, crf),
             "engine": VideoStream(directory / ENGINE_MP4, fps, crf)}
            if video else {}
        )
        self._fd = os.open(directory / FRAMES_JSONL, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lines_end = os.lseek(self._fd, 0, os.SEEK_END)  # frames.jsonl's length after its last whole line

    def finish(self) -> dict[str, int]:
        """Flush the queue, stop the thread; return the frames per video stream kept (_close removes one
        that failed)."""
        super().finish()
        return {name: s.frames for name, s in self.streams.items() if s.frames and s.error is None}

    def _discard(self, packet: FramePacket) -> None:
        """The files of a failed frame that landed (no line lists them) and a line written in part.
        Removing never needs room, so this works on a full disk."""
        for kind in packet.arrays:
            frame_file(self.directory, kind, packet.position).unlink(missing_ok=True)
        os.ftruncate(self._fd, self._lines_end)

    def save_meta(self, meta: dict[str, Any]) -> None:
        atomic_write_json(self.directory / SESSION_JSON, meta)

    def _write_files(self, packet: FramePacket) -> None:
        for kind, array in packet.arrays.items():
            with atomic_file(frame_file(self.directory, kind, packet.position)) as handle:  # never half a PNG
                if kind == "labels":
                    handle.write(encode_png(array))
                elif FRAME_FILES[kind][1] == ".png":
                    Image.fromarray(array).save(handle, format="PNG", compress_level=1)
                else:
                    np.save(handle, array, allow_pickle=False)
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
        self._lines_end += len(line)
        self.frames_written += 1

    def _close(self) -> None:
        """Finalize the videos (their errors go to ``notes``) and make frames.jsonl durable. An mp4 that
        ffmpeg could not finish (a full disk) does not play: it is removed, which also frees its room
        for the closing session.json, and the note says how to make it again from the lossless frames."""
        for stream in self.streams.values():
            stream.close()
            if stream.error:
                stream.path.unlink(missing_ok=True)
                self.notes.append(f"{stream.path.name} removed: {stream.error}; make a video from the lossless "
                                  f"frames with launch.py --replay {self.directory} --export OUT.mp4")
        try:
            os.fsync(self._fd)
        except OSError:
            pass
        os.close(self._fd)
