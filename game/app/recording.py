"""The drive's recording (--record DIR, the R key): one SessionRecorder at a time, the ones R stopped
still finalizing in threads, and why a recording failed, for the HUD and the exit status; and the live
view (--live foxglove), which gets every tick the recorder would."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from carla_bridge.core.files import stamped_folder
from carla_bridge.session import SessionRecorder
from game.startup.cli import LaunchError
from game.view.hud import HUD

RED = (255, 90, 90)
# A headless drive waits for the session writer when this many ticks are queued and not yet on disk.
HEADLESS_BACKLOG_FRAMES = 16


def start_live(view: str | None, port: int) -> Any:
    """The --live server (carla_bridge.session.live.LiveView), or None without --live."""
    if view is None:
        return None
    from carla_bridge.session.live import LiveView  # an optional package: the mcap extra

    try:
        live = LiveView(port)
    except RuntimeError as error:  # foxglove-sdk's "Address already in use" and the like
        raise LaunchError(f"--live-port {port}: cannot serve on 127.0.0.1:{port} ({error}); "
                          "choose another port with --live-port (0: any free one)") from None
    print(f"live view: {live.url} (Foxglove: Open connection, Foxglove WebSocket)")
    return live


class Recording:
    def __init__(self, hud: HUD, root: Path | None, size: tuple[int, int], record_rgb: bool,
                 headless: bool, record_format: str = "folder", live: Any = None) -> None:
        self.hud, self.root, self.size, self.record_rgb, self.headless = hud, root, size, record_rgb, headless
        self.record_format, self.live = record_format, live
        self.recorder: SessionRecorder | None = None
        self.finishing: list[threading.Thread] = []  # recordings stopped with R, finalizing
        self.error: str | None = None  # why a recording failed to start or stopped (disk full, ...)

    @property
    def active(self) -> bool:
        """Whether a tick has somewhere to go: a recording or the live view."""
        return self.recorder is not None or self.live is not None

    def text(self) -> str | None:
        """The HUD's "REC n", or None when not recording."""
        return None if self.recorder is None else f"REC {self.recorder.frames_written}"

    def toggle(self, meta: dict, compiled: bool) -> None:
        if self.recorder is not None:
            self.stop(compiled, wait=False)
        else:
            self.start(meta)

    def start(self, meta: dict) -> None:
        mcap = self.record_format == "mcap"
        path = stamped_folder(self.root or "sessions", suffix=".mcap" if mcap else "")
        self.recorder = SessionRecorder(path, meta, size=self.size, record_rgb=self.record_rgb, video=True,
                                        record_format=self.record_format)
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
        """Send one tick to the live view and queue it; a headless drive then waits for the writer (see
        _wait_for_writer)."""
        if self.live is not None:
            self.live.publish(frame, frame.ego.control, rendered, timings)
        recorder = self.recorder
        if recorder is None:
            return
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
        if self.live is not None:
            self.live.close()
            self.live = None
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
