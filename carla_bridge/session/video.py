"""H.264 viewing copies (render.mp4, engine.mp4) fed frame by frame through a piped ffmpeg.

Used by the session writer and by game/export.py. Lossy: the lossless per-frame files are the truth
(format.py).
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np

# ffmpeg runs this much nicer than the game: on a busy CPU the drive's frames come first and the encoder
# catches up in the gaps (the queue absorbs the lag; see the back-pressure policy in recorder.py).
BACKGROUND_NICE = 5


class VideoStream:
    """An H.264 (yuv420p) mp4 fed frame by frame through a piped ffmpeg, started on the first frame.

    ffmpeg comes from imageio-ffmpeg, but is started here with subprocess rather than through
    ``imageio_ffmpeg.write_frames``: that one passes ``preexec_fn=os.setpgrp``, which forces fork() instead
    of vfork(), and fork() from this thread while the drive thread is inside an OpenBLAS call deadlocks
    in OpenBLAS's at-fork handler (imageio-ffmpeg issue #58). ``process_group=0`` (setpgid in
    the vfork child) keeps Ctrl-C away from ffmpeg, so close() can still finalize the file. Not
    ``start_new_session``: with the kernel's autogroup scheduling (on by default on desktop Linux) a new
    session is a new scheduling group that competes with the whole game as an equal, which makes the
    nice +5 meaningless; in the game's session ffmpeg yields to the drive as intended.
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
        self.size = (width, height)
        padded = f"{width + width % 2}x{height + height % 2}"
        # One x264 thread up to 1024x512: its frame threads cost ~20 % more CPU per frame there (1.1 vs
        # 1.4 ms at 512x256, measured) and one core encodes such frames at hundreds of fps anyway.
        threads = ["-threads", "1"] if width * height <= 1024 * 512 else []
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo",
            "-pix_fmt", "rgb24", "-s", padded, "-r", f"{self.fps:g}", "-i", "-", "-an",
            "-vcodec", "libx264", *threads, "-pix_fmt", "yuv420p", "-crf", str(self.crf),
            "-preset", self.preset,
            "-movflags", "+frag_keyframe+empty_moov+default_base_moof", str(self.path),
        ]
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                          stderr=log, process_group=0)
        try:
            os.setpriority(os.PRIO_PROCESS, self._proc.pid,
                           os.getpriority(os.PRIO_PROCESS, self._proc.pid) + BACKGROUND_NICE)
        except (AttributeError, OSError):  # no setpriority (Windows), or not allowed: normal priority
            pass

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
            code = self._stop()  # a broken pipe is the symptom; ffmpeg's exit status says why
            why = self._exit_reason(code) if code else " ".join(filter(None, [str(exc), self._log_tail()]))
            # "sent": ffmpeg may not have written them all (a full disk), so the file may hold fewer
            self.error = f"{self.path.name} stopped after {self.frames} frames sent to ffmpeg: {why}"
            return False

    def close(self) -> None:
        code = self._stop()
        if code and self.error is None:
            self.error = f"{self.path.name}: {self._exit_reason(code)}"
        if self.error is None or not self._log_tail():
            try:
                self._log.unlink(missing_ok=True)  # an empty log tells nothing: do not leave it behind
            except OSError:  # the folder itself gone or replaced (NotADirectoryError): nothing to tidy
                pass

    def _stop(self) -> int | None:
        """Close ffmpeg's input and wait for it; its exit status, or None when it was not running."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            return proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def _exit_reason(self, code: int) -> str:
        """'ffmpeg exited with 228 (no space left on device): <its last log line>'. ffmpeg exits with its
        error code, -errno, which the shell shows as 256 - errno (228 for ENOSPC); 255 is its own
        'interrupted'. An empty log adds nothing."""
        text = f"ffmpeg exited with {code}"
        if 128 < code < 255 and 256 - code in errno.errorcode:
            text += f" ({os.strerror(256 - code).lower()})"
        tail = self._log_tail()
        return f"{text}: {tail}" if tail else text

    def _log_tail(self) -> str:
        """The last line of ffmpeg's log (the file keeps the rest)."""
        try:
            lines = self._log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][-300:] if lines else ""
