"""The app: set everything up from a GameConfig, run ticks (game.loop) until told to stop, and tear
down cleanly whatever ends the drive (ESC, window close, Ctrl+C, SIGTERM, --frames, end of a replay):
the step in flight finishes, the recording is finalized, the source is closed (CARLA's settings are
restored by CarlaSource.close), the profiling report and the screenshot are written.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pygame

from carla_bridge.frames import SourceLost
from game.cli import GameConfig, LaunchError
from game.display import DEFAULT_WINDOW, open_display, save_screenshot
from game.hud import HUD
from game.keyboard import KeyboardController
from game.loop import tick
from game.memory import memory_warning
from game.outputs import check_outputs, remove_empty
from game.rendering import (
    check_size, default_resolution, interruption_in, load_model, make_renderer, resolve_device,
)
from game.sources import make_source
from game.status import FrameStats, session_meta


class App:
    """Holds the live state the loop, the keys and the HUD share (see game.loop.tick)."""

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
        self.renderer = make_renderer(self.model.model, config.backend, config.device, config.precision, self.size)
        self.surface, self.headless, display_note = open_display(config.window or DEFAULT_WINDOW, config.headless)
        self.draw = not self.headless or config.screenshot is not None  # headless draws only for a screenshot
        from_replay = self.source_name == "replay"
        self.keyboard = KeyboardController(autopilot=config.autopilot or (self.headless and not from_replay))
        self.hud = HUD()
        self.profiler = _make_profiler(config, self.device)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="source") if config.threaded else None
        self.end_errors = _end_errors(from_replay)
        self.bad_session_errors = _bad_session_errors(from_replay)
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
        self._closed = False
        self._announce(display_note)
        if config.record is not None:
            from game.actions import start_recording

            start_recording(self)

    def _announce(self, display_note: str | None) -> None:
        renderer = self.renderer
        print(f"source: {self.source_reason}")
        print(f"model: {self.model.label}; backend {renderer.backend_name} on {renderer.device_name} "
              f"({renderer.precision}), {self.size[0]}x{self.size[1]}"
              f"{', threaded' if self.pool is not None else ''}")
        if display_note:
            print(display_note)
        if self.headless:
            print("headless: no window; " + ("controls from the replay" if self.source_name == "replay" else
                  "the autopilot drives") + ("" if self.config.frames else "; Ctrl+C to stop"))
            if self.config.record_rgb and self.config.record is None:  # no R key to start one with
                print("note: --record-rgb does nothing here: a headless run records only with --record DIR")
        self.hud.notify(f"source: {self.source_reason}", seconds=5.0)
        if self.model.untrained:
            from game.status import banner_text

            bar = "!" * 78
            sys.stdout.flush()
            print(f"{bar}\n!! {banner_text(self)}\n!! the neural view shows an untrained network's output, "
                  f"not a photo.\n{bar}", file=sys.stderr, flush=True)

    def run(self) -> int:
        """Tick until something ends the drive; always tears down. Returns the exit code."""
        previous = self._catch_signals()
        if _TERMINATED_AT_START_UP:  # a SIGTERM during start-up that a library swallowed: honour it now
            self.stop_requested = _TERMINATED_AT_START_UP.pop()
            _TERMINATED_AT_START_UP.clear()
        code = 0
        try:
            while not self.stop_requested and tick(self):
                pass
            if self.stop_requested:
                print(f"{_SIGNAL_NAMES.get(self.stop_requested, 'signal')}: closing")
        except KeyboardInterrupt:  # a second Ctrl+C, or one before the handler was installed
            print("Ctrl+C: closing")
        except SourceLost as error:  # e.g. the CARLA server went away: end the drive, keep the recording
            print(f"the drive ended: {error}", file=sys.stderr)
            if self.recorder is not None:
                self.recorder.ended_by = f"source lost: {error}"  # session.json says why it is short
            code = 1
        except self.bad_session_errors as error:  # a corrupt replay file: bad input; keep the recording
            print(f"error: {error}", file=sys.stderr)
            code = 2
        finally:
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

    def _catch_signals(self) -> dict:
        """SIGTERM and Ctrl+C end the drive at the next tick boundary, so no stage is cut in half (a
        KeyboardInterrupt inside the recorder or a backend could leave a lock held and hang the
        teardown). A second Ctrl+C stops at once. While closing, one more Ctrl+C only says what is being
        finished (it used to abandon the teardown: recording unfinalized, a CARLA server left in
        synchronous mode); a second one abandons it."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        warned = []

        def stop(signum, _frame) -> None:
            if self._closed and signum == signal.SIGINT and not warned:
                warned.append(True)  # os.write: print() is not reentrant, the main thread may be in one
                os.write(2, b"still closing (finishing the recording, closing the source); "
                            b"Ctrl+C again to abandon\n")
                return
            if (self.stop_requested or self._closed) and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.stop_requested = signum

        return {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}

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
            from game.actions import stop_recording

            stop_recording(self)
        for thread in self.finishing:
            thread.join()

    def _write_report(self) -> None:
        if self.config.profile:
            report_dir = self.config.report or _stamped("reports")
            # write_report prints the table and where the files went; no second line here
            self.profiler.write_report(report_dir, {**session_meta(self), "resolution": list(self.size)})

    def _close_renderer(self) -> None:
        close = getattr(self.renderer, "close", None)
        if callable(close):
            close()


_SIGNAL_NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl+C"}


class _NoProfiler:
    """Stands in for a disabled game.profiler.Profiler when that package is not in this checkout."""

    enabled = False

    def begin_frame(self) -> None: ...
    def end_frame(self) -> None: ...
    def add_span(self, name: str, start_ns: int, end_ns: int) -> None: ...
    def device_range(self, name: str):
        return contextlib.nullcontext()
    def live_stats(self) -> dict:
        return {}


def _make_profiler(config: GameConfig, device: str):
    try:
        from game.profiler import Profiler
    except ImportError as error:
        if config.profile:
            raise LaunchError(f"--profile: the profiler is not available in this checkout ({error})") from None
        return _NoProfiler()
    return Profiler(enabled=config.profile, warmup_frames=warmup_frames(config.frames),
                    use_cuda=device.startswith("cuda"))


def _end_errors(from_replay: bool) -> tuple[type[BaseException], ...]:
    if not from_replay:
        return ()
    from carla_bridge.session import SessionEnded

    return (SessionEnded,)


def _bad_session_errors(from_replay: bool) -> tuple[type[BaseException], ...]:
    """A session file found corrupt mid-replay (a truncated label PNG): the files are read one tick at a
    time, so opening the session cannot catch it. It used to end the replay in a traceback."""
    if not from_replay:
        return ()
    try:
        from carla_bridge.session import SessionFormatError
    except ImportError:  # replay is not in this checkout: make_source says so
        return ()
    return (SessionFormatError,)


def _stamped(root: str):
    import time
    from pathlib import Path

    return Path(root) / time.strftime("%Y%m%d-%H%M%S")


def run_export(config: GameConfig) -> int:
    """--replay DIR --export OUT.mp4 / --export-frames DIR: render the session offline and exit.
    --res resamples the session (ReplaySource(size=...)), as in the drive."""
    try:
        from game.export import export_session
    except ImportError as error:
        raise LaunchError(f"--export: session export is not available in this checkout ({error})") from None
    model = load_model(config)
    resolve_device(config)
    recorded = _replay_size(config)  # opened even with --res: a bad session fails here, before any render
    size = config.res or recorded
    check_size(model, size, "--res" if config.res else f"--replay {config.replay}")
    renderer = make_renderer(model.model, config.backend, config.device, config.precision, size)
    if model.untrained:
        print(f"warning: exporting with an UNTRAINED {model.preset} model", file=sys.stderr)
    try:
        export_session(config.replay, renderer, out_mp4=config.export, frames_dir=config.export_frames)
    except (OSError, RuntimeError, *_bad_session_errors(True)) as error:  # disk full, ffmpeg gone, a corrupt
        # session file: say so, no traceback, and where the frames rendered before it are
        if interruption_in(error) is not None:
            raise  # Ctrl+C in an import the export started: main says "the export stopped"
        raise LaunchError("; ".join([f"export failed: {error}", *getattr(error, "__notes__", [])])) from None
    for target in (config.export, config.export_frames):
        if target is not None:
            print(f"exported: {target}")
    return 0


def run_backend_comparison(config: GameConfig) -> int:
    """--profile --backend all: the profiler renders the same frames with every backend (contract 7)."""
    try:
        from game.profiler import run_comparison
    except ImportError as error:
        raise LaunchError(f"--backend all: the profiler is not available in this checkout ({error})") from None
    model = load_model(config)
    device = resolve_device(config)
    size = config.res or (_replay_size(config) if config.replay else default_resolution(model.preset, device))
    check_size(model, size, "--res" if config.res or not config.replay else f"--replay {config.replay}")
    frames = config.frames or 120
    run_comparison(model.model, size, frames=frames, warmup_frames=warmup_frames(frames), session=config.replay,
                   seed=config.seed or 0, device=config.device, precision=config.precision,
                   report_dir=config.report or _stamped("reports"),  # the default --help promises
                   meta={"model": model.label, "model_path": str(model.path) if model.path else None,
                         "untrained": model.untrained})
    return 0


def _warn_if_memory_short(size: tuple[int, int], device: str) -> None:
    shortage = memory_warning(size, device)
    if shortage:
        print(shortage, file=sys.stderr)


def warmup_frames(frames: int | None) -> int:
    """The profiler's warm-up: 10 frames, at most half of a short run (with 10, `--frames 10` measured a
    single frame and `--frames 3` none: an empty report)."""
    return 10 if frames is None else min(10, frames // 2)


def refuse_flags_the_comparison_ignores(config: GameConfig) -> None:
    """--backend all renders prepared frames with each backend in turn: there is no drive to record,
    screenshot or pipeline. Those flags used to be dropped silently (and --record still made its folder)."""
    ignored = [flag for flag, given in (("--record", config.record), ("--screenshot", config.screenshot),
                                        ("--threaded", config.threaded)) if given]
    if ignored:
        raise LaunchError(f"--backend all compares backends on prepared frames, without a drive: "
                          f"{', '.join(ignored)} do not apply; leave them out, or pick one --backend")


def _replay_size(config: GameConfig) -> tuple[int, int]:
    """The recorded size of the --replay session (compare its frames at the size they were driven)."""
    source = make_source(config, (0, 0)).source
    try:
        return source.reset().size
    finally:
        source.close()


class _Terminated(KeyboardInterrupt):
    """SIGTERM during start-up or an export, raised like Ctrl+C so the same clean-up runs."""


# SIGTERMs raised as _Terminated during start-up. Kept as well as raised: a library that swallows the
# exception (numba's compiler callbacks print "Exception ignored ... _Terminated") made the signal vanish
# and the drive ran to its end. App.run stops at once when one is here.
_TERMINATED_AT_START_UP: list[int] = []


def _raise_terminated(signum, frame) -> None:
    _TERMINATED_AT_START_UP.append(signum)
    raise _Terminated


def main(config: GameConfig) -> int:
    """Run the game (or the export, or the backend comparison) for a parsed config; start-up problems
    print one line and return 2. Ctrl+C or SIGTERM before the drive starts (loading torch, the model,
    connecting) or during an export prints one line and returns 130. SIGTERM used to kill the process
    there outright: a CARLA server it had just switched to synchronous mode stayed frozen in it; now
    App.__init__'s clean-up closes the source (which restores the server's settings)."""
    if config.verbose:  # as manual_control.py -v: the parts' loggers (carla_bridge.*) at DEBUG
        import logging

        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.DEBUG)
    in_main = threading.current_thread() is threading.main_thread()
    _TERMINATED_AT_START_UP.clear()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main else None
    try:
        return _main(config)
    except KeyboardInterrupt as interrupt:
        return _interrupted(config, interrupt)
    except Exception as error:  # an import the signal cut short wraps it (see interruption_in)
        interrupt = interruption_in(error)
        if interrupt is None:
            raise
        return _interrupted(config, interrupt, getattr(error, "__notes__", None))
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupted(config: GameConfig, interrupt: KeyboardInterrupt, notes: list[str] | None = None) -> int:
    """Say in one line what Ctrl+C or SIGTERM stopped; exit status 130."""
    if config.export is not None or config.export_frames is not None:
        # export_session notes where it left the frames written so far (not at the final path)
        kept = notes or getattr(interrupt, "__notes__", ["nothing was exported"])
        what = "; ".join(["the export stopped", *kept])
    elif config.backend == "all":
        what = "the backend comparison stopped"
    else:
        what = "stopped before the drive started"
    print(f"{'SIGTERM' if isinstance(interrupt, _Terminated) else 'Ctrl+C'}: {what}", file=sys.stderr)
    return 130


def _main(config: GameConfig) -> int:
    created = []
    try:
        if config.backend == "all":
            refuse_flags_the_comparison_ignores(config)  # before check_outputs makes their folders
        created = check_outputs(config)
        if config.export is not None or config.export_frames is not None:
            return run_export(config)
        if config.backend == "all":
            return run_backend_comparison(config)
        app = App(config)
    except (LaunchError, *_bad_session_errors(config.replay is not None)) as error:
        remove_empty(created)  # e.g. --record DIR made for a drive that never started
        print(f"error: {error}", file=sys.stderr)  # e.g. a corrupt first frame of the --replay session
        return 2
    except BaseException:  # Ctrl+C or SIGTERM while starting
        remove_empty(created)
        raise
    return app.run()
