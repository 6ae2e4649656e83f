"""The app: set everything up from a GameConfig, run ticks (game.app.loop) until told to stop, and tear
down cleanly whatever ends the drive (ESC, window close, Ctrl+C, SIGTERM, --frames, end of a replay):
the step in flight finishes, the recording is finalized, the source is closed (CARLA's settings are
restored by CarlaSource.close), the profiling report and the screenshot are written.

This file is the drive's App and the small policies it shares with the other launches (game.startup.modes:
warm-up frames, report folders, which errors mean a corrupt session). What runs before an App exists
lives in game.startup.main (the entry point launch.py calls), and all signal handling in game.app.signals.
"""

from __future__ import annotations

import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pygame

from carla_bridge.core.frames import SourceLost
from game.startup.cli import GameConfig, LaunchError
from game.view.display import DEFAULT_WINDOW, open_display, save_screenshot
from game.view.hud import HUD
from game.keys.keyboard import KeyboardController
from game.app.loop import tick
from game.startup.memory import memory_warning
from game.startup.rendering import check_size, default_resolution, load_model, make_renderer, resolve_device
from game.app.signals import TERMINATED_AT_START_UP, catch_stop_signals
from game.interrupts import SIGNAL_NAMES, interrupt_name
from game.profiler.profiler import Profiler
from game.profiler.report import write_report
from game.startup.sources import make_source
from game.app.status import FrameStats, session_meta


class App:
    """Holds the live state the loop, the keys and the HUD share (see game.app.loop.tick)."""

    def __init__(self, config: GameConfig) -> None:
        self.config = config
        self.model = load_model(config)
        self.device = resolve_device(config)
        requested = config.res or default_resolution(self.model.preset, self.device)
        if config.source != "replay":
            check_size(self.model, requested, "--res")
            _warn_if_memory_short(requested, self.device)
        choice = make_source(config, requested)
        self.source, self.source_name, self.source_reason = choice.source, choice.name, choice.reason
        try:
            self._setup(config)
        except BaseException:
            self.source.close()
            raise

    def _setup(self, config: GameConfig) -> None:
        self.pending = self.source.reset(config.seed)  # cut=True: shown by the first tick
        self.size = self.pending.size  # a replay fixes its own size
        # --res resamples a replay: a size the model cannot take is then the flag's fault, not the session's
        flag = f"--replay {config.replay}" if config.replay and not config.res else "--res"
        check_size(self.model, self.size, flag)
        if config.source == "replay":  # its size is known only now; a live source's was checked before it started
            _warn_if_memory_short(self.size, self.device)
        self.renderer = make_renderer(self.model.model, config.backend, config.device, config.precision, self.size,
                                      config.compile)
        self.surface, self.headless, display_note = open_display(config.window or DEFAULT_WINDOW, config.headless)
        self.draw = not self.headless or config.screenshot is not None  # headless draws only for a screenshot
        from_replay = self.source_name == "replay"
        self.keyboard = KeyboardController(autopilot=config.autopilot or (self.headless and not from_replay))
        self.hud = HUD()
        self.profiler = _make_profiler(config, self.device, compiled=self.renderer.compiled)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="source") if config.threaded else None
        self.end_errors = _end_errors(from_replay)
        self.bad_session_errors = bad_session_errors(from_replay)
        self.clock = pygame.time.Clock()
        self.stats = FrameStats()
        self.frame = self.rendered = None
        self.timings: dict[str, float] = {}
        self.rects: dict = {}
        self.layout = self.weather = self.ticks = 0
        self.backend_tried: str | None = None
        self.pace_origin = None
        self.recorder = None
        self.finishing: list[threading.Thread] = []  # recordings stopped with R, finalizing
        self.recording_error: str | None = None  # why a recording failed to start or stopped (disk full, ...)
        self.stop_requested = False
        self.compiling = False  # the renderer's first, compiling frame is in progress (game.app.loop._render)
        self._closed = False
        self._announce(display_note)
        if config.record is not None:
            from game.app.actions import start_recording

            start_recording(self)

    def _announce(self, display_note: str | None) -> None:
        renderer = self.renderer
        print(f"source: {self.source_reason}")
        print(f"model: {self.model.label}; backend {renderer.backend_name} on {renderer.device_name} "
              f"({renderer.precision}{', compiled' if renderer.compiled else ''}), "
              f"{self.size[0]}x{self.size[1]}"
              f"{', threaded' if self.pool is not None else ''}")
        if display_note:
            print(display_note)
        if self.headless:
            print("headless: no window; " + ("controls from the replay" if self.source_name == "replay" else
                  "the autopilot drives") + ("" if self.config.frames else "; Ctrl+C to stop"))
            if self.config.record_rgb and self.config.record is None:  # no R key to start one with
                print("note: --record-rgb does nothing here: a headless run records only with --record DIR")
        self.hud.notify(f"source: {self.source_reason}", seconds=5.0)
        if self.model.untrained or self.model.barely_trained:
            from game.app.status import banner_text

            bar = "!" * 78
            kind = "an untrained" if self.model.untrained else "a barely trained"
            sys.stdout.flush()
            print(f"{bar}\n!! {banner_text(self)}\n!! the neural view shows {kind} network's output, "
                  f"not a photo.\n{bar}", file=sys.stderr, flush=True)

    def run(self) -> int:
        """Tick until something ends the drive; always tears down. Returns the exit code (130 when Ctrl+C
        or SIGTERM stopped it before its --frames)."""
        previous = catch_stop_signals(self)
        if TERMINATED_AT_START_UP:  # a SIGTERM during start-up that a library swallowed: honour it now
            self.stop_requested = TERMINATED_AT_START_UP.pop()
            TERMINATED_AT_START_UP.clear()
        code = 0
        try:
            while not self.stop_requested and tick(self):
                pass
            if self.stop_requested:
                print(f"{SIGNAL_NAMES.get(self.stop_requested, 'signal')}: closing")
        except KeyboardInterrupt as interrupt:  # a second Ctrl+C, one before the handler was installed,
            # or either signal while the first frame compiled (raised as Terminated for SIGTERM)
            print(f"{interrupt_name(interrupt)}: closing")
            self.stop_requested = self.stop_requested or signal.SIGINT  # the exit status and report say so
        except SourceLost as error:  # e.g. the CARLA server went away: end the drive, keep the recording
            print(f"the drive ended: {error}", file=sys.stderr)
            if self.recorder is not None:
                self.recorder.ended_by = f"source lost: {error}"  # session.json says why it is short
            code = 1
        except self.bad_session_errors as error:  # a corrupt replay file: bad input; keep the recording
            print(f"error: {error}", file=sys.stderr)
            code = 2
        finally:
            if self.cut_short and code == 0:  # a script's --frames run that a signal ended early is not done
                code = 130
            try:
                if not self.close() and code == 0:
                    code = 1  # e.g. the screenshot could not be saved: a script must not take it as done
                if self.recording_error and self.headless and code == 0:  # a window showed the notice
                    print(f"the recording failed: {self.recording_error}", file=sys.stderr)
                    code = 1
            except KeyboardInterrupt:  # Ctrl+C twice more while closing: the person gave up waiting
                print("Ctrl+C: teardown abandoned (a recording is readable up to its last complete frame)",
                      file=sys.stderr)
                code = 130
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
        return code

    def close(self) -> bool:
        """Idempotent teardown, in the order that loses nothing; one failing step does not skip the
        others (the source must be closed even when, say, the disk is full). False when a step failed."""
        if self._closed:
            return True
        self._closed = True
        ok = True
        for step in (self._join_worker, self._save_screenshot, self._finish_recording, self.source.close,
                     self._write_report, self._close_renderer):
            try:
                step()
            except Exception as error:  # report and go on: the remaining steps still matter
                print(f"while closing ({step.__name__}): {type(error).__name__}: {error}", file=sys.stderr)
                ok = False
        print(f"{self.ticks} ticks: {self.stats.summary()}")
        pygame.display.quit()
        return ok

    def _join_worker(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)  # let a step in flight finish before its source closes

    def _save_screenshot(self) -> None:
        if self.config.screenshot is not None and self.frame is not None:
            save_screenshot(self.surface, self.config.screenshot)
            print(f"screenshot: {self.config.screenshot}")

    def _finish_recording(self) -> None:
        if self.recorder is not None:
            from game.app.actions import stop_recording

            stop_recording(self)
        for thread in self.finishing:
            thread.join()

    @property
    def frames_goal(self) -> int | None:
        """The ticks this run was to make: --frames, capped by a replay's length (a 5-frame session with
        --frames 100 ends done after 5), None for an open-ended drive."""
        frames = self.config.frames
        length = len(self.source) if frames and hasattr(self.source, "__len__") else None
        return frames if length is None else min(frames, length)

    @property
    def cut_short(self) -> bool:
        """Ctrl+C or SIGTERM ended a drive before its goal (ending an open-ended drive so is normal)."""
        goal = self.frames_goal
        return bool(self.stop_requested and goal and self.ticks < goal)

    def _write_report(self) -> None:
        if self.config.profile:
            report_dir = self.config.report or stamped("reports")
            # The report says whether the run measured what was asked (game.profiler.report.run_status).
            ended_by = SIGNAL_NAMES.get(self.stop_requested) if self.stop_requested else None
            meta = {**session_meta(self), "resolution": list(self.size),
                    "frames_requested": self.frames_goal, "ended_by": ended_by}
            # write_report prints the table and where the files went; no second line here
            write_report(self.profiler, report_dir, meta)

    def _close_renderer(self) -> None:
        close = getattr(self.renderer, "close", None)
        if callable(close):
            close()


def _make_profiler(config: GameConfig, device: str, compiled: bool = False) -> Profiler:
    return Profiler(enabled=config.profile, warmup_frames=warmup_frames(config.frames, compiled),
                    use_cuda=device.startswith("cuda"))


def _end_errors(from_replay: bool) -> tuple[type[BaseException], ...]:
    if not from_replay:
        return ()
    from carla_bridge.session import SessionEnded

    return (SessionEnded,)


def bad_session_errors(from_replay: bool) -> tuple[type[BaseException], ...]:
    """A session file found corrupt mid-replay (a truncated label PNG): the files are read one tick at a
    time, so opening the session cannot catch it. It used to end the replay in a traceback."""
    if not from_replay:
        return ()
    try:
        from carla_bridge.session import SessionFormatError
    except ImportError:  # replay is not in this checkout: make_source says so
        return ()
    return (SessionFormatError,)


def stamped(root: str):
    """root/YYYYMMDD-HHMMSS: the folder a report goes to when --report names none."""
    import time
    from pathlib import Path

    return Path(root) / time.strftime("%Y%m%d-%H%M%S")


def _warn_if_memory_short(size: tuple[int, int], device: str) -> None:
    shortage = memory_warning(size, device)
    if shortage:
        print(shortage, file=sys.stderr)


def warmup_frames(frames: int | None, compiled: bool = False) -> int:
    """The profiler's warm-up: 10 frames, at most half of a short run (with 10, `--frames 10` measured a
    single frame and `--frames 3` none: an empty report). A compiled renderer's first frame is never
    measured, even when that leaves nothing: `--frames 1 --compile --profile` reported the compile
    (19 s on a 2-core CPU, 0.1 fps) as the compiled latency."""
    warmup = 10 if frames is None else min(10, frames // 2)
    return max(warmup, 1) if compiled else warmup
