"""The session writer thread: PNG/npy files, the frames.jsonl line, and the two H.264 streams.

Every disk operation of a recording happens here so the drive never waits on the disk or the encoder.
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
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from carla_bridge.session.format import (
    ENGINE_MP4, FRAMES_JSONL, RENDER_MP4, encode_grey_png, frame_file, render_digest,
)


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


BACKGROUND_NICE = 5


def lower_priority(pid: int) -> None:
    """Run ffmpeg at nice +5: on a busy CPU the drive's frames come first and the encoder catches up in
    the gaps (the queue absorbs the lag; see the back-pressure policy in recorder.py)."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, pid) + BACKGROUND_NICE)
    except (AttributeError, OSError):  # not on this platform, or not allowed: run at normal priority
        pass


class VideoStream:
    """An H.264 (yuv420p) mp4 fed frame by frame through a piped ffmpeg, started on the first frame.

    ffmpeg comes from imageio-ffmpeg, but is started here with subprocess rather than through
    ``imageio_ffmpeg.write_frames``: that one passes ``preexec_fn=os.setpgrp``, which forces fork() instead
    of vfork(), and fork() from this thread while the drive thread is inside an OpenBLAS call deadlocks
    in OpenBLAS's at-fork handler (seen here; imageio-ffmpeg issue #58). ``start_new_session`` keeps
    Ctrl-C away from ffmpeg (so close() can still finalize the file) and allows vfork.
    Fragmented mp4 (moov first, a fragment per keyframe) so that a file cut by a crash still plays; odd
    sizes are padded by one edge pixel because yuv420p needs even sides.
    """

    def __init__(self, path: Path, fps: float, crf: int = 18, preset: str = "ultrafast") -> None:
        self.path, self.fps, self.crf, self.preset = path, fps, crf, preset
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self.error: str | None = None
        self._proc: subprocess.Popen | None = None
        self._log = path.with_name(path.stem + ".ffmpeg.log")

    def _open(self, width: int, height: int) -> None:
        import imageio_ffmpeg

        self.size = (width, height)
        padded = f"{width + width % 2}x{height + height % 2}"
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo",
            "-pix_fmt", "rgb24", "-s", padded, "-r", f"{self.fps:g}", "-i", "-", "-an",
            "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", str(self.crf), "-preset", self.preset,
            "-movflags", "+frag_keyframe+empty_moov+default_base_moof", str(self.path),
        ]
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                          stderr=log, start_new_session=True)
        lower_priority(self._proc.pid)

    def write(self, image: np.ndarray) -> bool:
        """Append a frame; return False (and note why in .error) when the stream cannot take it."""
        if self.error is not None:
            return False
        height, width = image.shape[:2]
        try:
            if self._proc is None:
                self._open(width, height)
            if (width, height) != self.size:
                return False  # a frame of another size cannot join this stream; the record says so
            if width % 2 or height % 2:
                image = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
            self._proc.stdin.write(np.ascontiguousarray(image, dtype=np.uint8).data)
            self.frames += 1
            return True
        except Exception as exc:  # ffmpeg missing, pipe broken, disk full: the video stops, not the drive
            self.close()
            self.error = f"{self.path.name} stopped after {self.frames} frames: {exc} {self._log_tail()}"
            return False

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        if code != 0 and self.error is None:
            self.error = f"{self.path.name}: ffmpeg exited with {code}: {self._log_tail()}"
        if self.error is None:
            self._log.unlink(missing_ok=True)

    def _log_tail(self) -> str:
        try:
            return self._log.read_text(errors="replace").strip()[-300:]
        except OSError:
            return ""


@dataclass
class WriterState:
    """What the writer reports back to the recorder (read from the drive thread; plain attributes)."""

    frames_written: int = 0
    pending_bytes: int = 0
    pending_video: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)


class SessionWriter(threading.Thread):
    """Consumes FramePackets from an unbounded queue; the recorder bounds it by bytes (see recorder.py)."""

    def __init__(self, directory: Path, fps: float, video: bool, crf: int = 18) -> None:
        super().__init__(name=f"session-writer:{directory.name}", daemon=True)
        self.directory = directory
        self.queue: queue.SimpleQueue[FramePacket | None] = queue.SimpleQueue()
        self.state = WriterState()
        self._lock = threading.Lock()
        self.streams = (
            {"render": VideoStream(directory / RENDER_MP4, fps, crf),
             "engine": VideoStream(directory / ENGINE_MP4, fps, crf)}
            if video else {}
        )
        self._fd = os.open(directory / FRAMES_JSONL, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def put(self, packet: FramePacket | None) -> None:
        if packet is not None:
            with self._lock:
                self.state.pending_bytes += packet.nbytes
                self.state.pending_video += packet.video
        self.queue.put(packet)

    def run(self) -> None:
        # The thread itself keeps normal priority: it takes the GIL between C calls, and a niced thread
        # descheduled while holding it would stall the drive (priority inversion); only ffmpeg is niced.
        try:
            while (packet := self.queue.get()) is not None:
                try:
                    if self.state.error is None:
                        self._write(packet)
                except OSError as exc:
                    self.state.error = (
                        f"recording stopped at frame {packet.position}: cannot write in {self.directory}: "
                        f"{describe_os_error(exc, self.directory)} ({exc.strerror or exc}); "
                        f"the {self.state.frames_written} frames before it are complete"
                    )
                except Exception as exc:  # a bug must not kill the drive either; say what happened
                    self.state.error = f"recording stopped at frame {packet.position}: {exc!r}"
                finally:
                    with self._lock:
                        self.state.pending_bytes -= packet.nbytes
                        self.state.pending_video -= packet.video
        finally:
            self._finish()

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
        self.state.frames_written += 1

    def _finish(self) -> None:
        for stream in self.streams.values():
            stream.close()
            if stream.error:
                self.state.notes.append(stream.error)
        try:
            os.fsync(self._fd)
        except OSError:
            pass
        os.close(self._fd)
