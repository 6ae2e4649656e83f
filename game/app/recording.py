"""The drive's recording (--record DIR, the R key): one SessionRecorder at a time, the ones R stopped
still finalizing in threads, and why a recording failed, for the HUD and the exit status."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from carla_bridge.core.files import stamped_folder
from carla_bridge.session import SessionRecorder
from game.view.hud import HUD

RED = (255, 90, 90)
# A headless drive waits for the session writer when this many ticks are queued and not yet on disk.
HEADLESS_BACKLOG_FRAMES = 16


class Recording:
    def __init__(self, hud: HUD, root: Path | None, size: tuple[int, int], record_rgb: bool,
                 headless: bool) -> None:
        self.hud, self.root, self.size, self.record_rgb, self.headless = hud, root, size, record_rgb, headless
        self.recorder: SessionRecorder | None = None
        self.finishing: list[threading.Thread] = []  # recordings stopped with R, finalizing
        self.error: str | None = None  # why a recording failed to start or stopped (disk full, ...)

    def text(self) -> str | None:
        """The HUD's "REC n", or None when not recording."""
        return None if self.recorder is None else f"REC {self.recorder.frames_written}"

    def toggle(self, meta: dict, compiled: bool) -> None:
        if self.recorder is not None:
            self.stop(compiled, wait=False)
        else:
            self.start(meta)

    def start(self, meta: dict) -> None:
        path = stamped_folder(self.root or "sessions")
        self.recorder = SessionRecorder(path, meta, size=self.size, record_rgb=self.record_rgb, video=True)
        if self.recorder.error:
            self.error = self.recorder.error  # the exit status says so (App.run)
            self.hud.notify(f"recording failed: {self.recorder.error}", color=RED, seconds=6.0)
            print(f"recording failed: {self.recorder.error}")
            self.recorder.close()  # its writer, if one started, would otherwise live on until exit
            self.recorder = None
            return
        self.hud.notify(f"Recording to {path}")
        print(f"recording to {path}")

    def add(self, frame, rendered, timings: dict[str, float], stopping: Callable[[], bool]) -> None:
        """Queue one tick; a headless drive then waits for the writer (see _wait_for_writer)."""
        recorder = self.recorder
        recorder.add(frame, frame.ego.control, rendered, timings=timings)
        if self.headless:
            _wait_for_writer(recorder, stopping)
        if recorder.error:
            self.error = recorder.error  # the exit status says so (App.run)
            self.hud.notify(f"recording stopped: {recorder.error}", color=(255, 80, 80), seconds=6.0)
            print(f"recording stopped: {recorder.error}")
            recorder.close()
            self.recorder = None

    def stop(self, compiled: bool, wait: bool = True) -> None:
        """Finalize the recording. wait=False (the R key) finishes it in a thread: the close waits for the
        writer and ffmpeg, 0.5-0.7 s measured on a 2-core box, which would freeze the drive on every R.
        close() joins that thread, so nothing is cut off at exit. compiled: what the renderer runs (a
        compile that fails runs eager), for session.json."""
        recorder, self.recorder = self.recorder, None
        # R twice within one tick, or R then ESC: nothing to keep (replay refuses a 0-frame session)
        if recorder.frames_queued == 0 and recorder.discard_if_empty():
            self.hud.notify("Recording cancelled: no frame was recorded")
            print(f"recording cancelled: no frame was recorded; removed {recorder.path}")
            return
        recorder.meta["compiled"] = compiled  # written to session.json at its close

        def finish() -> None:
            # The close flushes the queue and finalizes the videos and session.json: a disk that filled
            # up meanwhile fails there (truncated mp4s, a stale session.json), and the exit status says so.
            recorder.close()
            if recorder.error:
                self.error = recorder.error  # a headless run's exit status says so (App.run)
                self.hud.notify(f"recording damaged: {recorder.error}", color=RED, seconds=8.0)
                print(f"recorded {recorder.frames_written} frames to {recorder.path}, with an error: "
                      f"{recorder.error}", file=sys.stderr)
            else:
                print(f"recorded {recorder.frames_written} frames to {recorder.path}")

        if wait:
            finish()
            if not recorder.error:
                self.hud.notify(f"Recording stopped: {recorder.frames_written} frames in {recorder.path}")
            return
        self.hud.notify(f"Recording stopped: {recorder.path}")
        thread = threading.Thread(target=finish, name="recording-close")
        thread.start()
        self.finishing.append(thread)

    def close(self, compiled: bool) -> None:
        if self.recorder is not None:
            self.stop(compiled)
        for thread in self.finishing:
            thread.join()


def _wait_for_writer(recorder, stopping: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """No one watches a headless drive, so it waits for the writer instead of outrunning it: unpaced,
    `--headless --record` runs 400 ticks/s at 64x32, and a recorder that falls 8 MB behind stops itself,
    losing the rest of the run it was started to record."""
    queued = recorder.frames_queued
    deadline = time.perf_counter() + timeout_s
    while (queued - recorder.frames_written > HEADLESS_BACKLOG_FRAMES and recorder.error is None
           and not stopping() and time.perf_counter() < deadline):
        time.sleep(0.002)
