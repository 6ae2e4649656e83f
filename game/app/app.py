"""The drive: the App sets everything up from a GameConfig, runs ticks until told to stop, and tears
down cleanly whatever ends the drive (ESC, window close, Ctrl+C, SIGTERM, --frames, end of a replay):
the step in flight finishes, the recording is finalized, the source is closed (CARLA's settings are
restored by CarlaSource.close), the profiling report and the screenshot are written.

One tick (ARCHITECTURE.md, "One tick of the drive"), sequential by default:
controls -> source.step -> render(frame t) -> display -> record. With --threaded the source step for
tick t+1 runs in a worker thread while the main thread renders and shows frame t, so a tick costs
max(source, render + display) instead of their sum, for one tick more control latency (PyTorch and
numpy release the GIL in their kernels, so the two really overlap). Source calls made by keys
(respawn, weather) happen only between ticks, when no step is in flight.

The App owns its state; the parts it holds (keyboard, HUD, recording, pacer, stop signals, profiler)
own theirs.
"""

from __future__ import annotations

import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter_ns

import pygame

from carla_bridge.core.files import stamped_folder
from carla_bridge.core.frames import SourceLost
from carla_bridge.core.labels import colorize
from carla_bridge.session import SessionEnded, SessionFormatError
from game.app.recording import Recording, start_live
from game.app.status import hud_lines, session_meta
from game.app.timing import FrameStats, Pacer, StageTimes, warmup_frames
from game.keys.keyboard import KeyboardController
from game.profiler.hooks import hud_lines as profiler_hud_lines
from game.profiler.profiler import Profiler
from game.profiler.report import write_report
from game.signals import SIGNAL_NAMES, StopSignals, interrupt_name
from game.startup.cli import GameConfig, LaunchError
from game.startup.rendering import (check_size, default_resolution, load_model, make_renderer, next_backend,
                                    resolve_device, warn_if_memory_short)
from game.startup.sources import make_source
from game.view.display import DEFAULT_WINDOW, open_display, save_screenshot
from game.view.hud import HUD
from game.view.layout import LAYOUTS, draw_panes, free_cell
from neural_render.runtime import STAGES, available_backends

RED = (255, 90, 90)


class App:
    def __init__(self, config: GameConfig) -> None:
        self.config = config
        self.model = load_model(config)
        self.device = resolve_device(config)
        requested = config.res or default_resolution(self.model, self.device)
        if config.source != "replay":
            check_size(self.model, requested, "--res")
            warn_if_memory_short(requested, self.device)
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
        if config.source == "replay":  # its size is known only now; a live source's was checked before it started
            # --res resamples a replay: a size the model cannot take is then the flag's fault, not the session's
            check_size(self.model, self.size, "--res" if config.res else f"--replay {config.replay}")
            warn_if_memory_short(self.size, self.device)
        self.renderer = make_renderer(self.model.model, config.backend, config.device, config.precision, self.size,
                                      config.compile, config.server)
        self.surface, self.headless, display_note = open_display(config.window or DEFAULT_WINDOW, config.headless)
        self.draw = not self.headless or config.screenshot is not None  # headless draws only for a screenshot
        from_replay = self.source_name == "replay"
        self.keyboard = KeyboardController(autopilot=config.autopilot or (self.headless and not from_replay))
        self.hud = HUD()
        self.recording = Recording(self.hud, config.record, self.size, config.record_rgb, self.headless,
                                   config.record_format, start_live(config.live, config.live_port))
        self.profiler = Profiler(enabled=config.profile, warmup_frames=warmup_frames(config.frames,
                                 self.renderer.compiled), use_cuda=self.device.startswith("cuda"))
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="source") if config.threaded else None
        self.end_errors = (SessionEnded,) if from_replay else ()
        # a session file found corrupt mid-replay (a truncated label PNG): read one tick at a time, so
        # opening the session cannot catch it
        self.bad_session_errors = (SessionFormatError,) if from_replay else ()
        self.clock = pygame.time.Clock()
        self.stats = FrameStats()
        self.pacer = Pacer()
        self.frame = self.rendered = None
        self.timings: dict[str, float] = {}
        self.rects: dict = {}
        self.layout = self.weather = self.ticks = 0
        self.backend_tried: str | None = None
        self.stop = StopSignals()
        self._announce(display_note)
        if config.record is not None:
            self.recording.start(self.session_meta())

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
            bar = "!" * 78
            kind = "an untrained" if self.model.untrained else "a barely trained"
            sys.stdout.flush()
            print(f"{bar}\n!! {self.model.banner()}\n!! the neural view shows {kind} network's output, "
                  f"not a photo.\n{bar}", file=sys.stderr, flush=True)

    # -- running -------------------------------------------------------------------------------------

    def run(self) -> int:
        """Tick until something ends the drive; always tears down. Returns the exit code (130 when Ctrl+C
        or SIGTERM stopped it before its --frames)."""
        previous = self.stop.install()
        code = 0
        try:
            while not self.stop.requested and self.tick():
                pass
            if self.stop.requested:
                print(f"{SIGNAL_NAMES[self.stop.requested]}: closing")
        except KeyboardInterrupt as interrupt:  # a second Ctrl+C, one before the handler was installed,
            # or either signal while the first frame compiled (raised as Terminated for SIGTERM)
            print(f"{interrupt_name(interrupt)}: closing")
            self.stop.requested = self.stop.requested or signal.SIGINT  # the exit status and report say so
        except SourceLost as error:  # e.g. the CARLA server went away: end the drive, keep the recording
            print(f"the drive ended: {error}", file=sys.stderr)
            if self.recording.recorder is not None:
                self.recording.recorder.ended_by = f"source lost: {error}"  # session.json says why it is short
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
                if self.recording.error and self.headless and code == 0:  # a window showed the notice
                    print(f"the recording failed: {self.recording.error}", file=sys.stderr)
                    code = 1
            except KeyboardInterrupt:  # Ctrl+C twice more while closing: the person gave up waiting
                print("Ctrl+C: teardown abandoned (a recording is readable up to its last complete frame)",
                      file=sys.stderr)
                code = 130
            finally:
                self.stop.restore(previous)
        return code

    def tick(self) -> bool:
        """Run one frame; False when the drive should stop (quit key, window closed, --frames reached,
        replay finished, a headless run's recording failed)."""
        if self.headless and self.recording.error:  # no one sees the notice: the run was started to record
            return False
        self.profiler.begin_frame()
        times = StageTimes(self.profiler)
        milliseconds = self.clock.tick()  # no frame cap: never wait here (pacing is below, on sim time)
        for action in self.keyboard.parse_events(pygame.event.get(), milliseconds):
            if action == "quit":
                return False
            self._ACTIONS[action](self)
        control = self.keyboard.control()

        future = None
        try:
            if self.pool is not None:  # show the frame stepped last tick; step the next one meanwhile
                frame = self.pending
                future = self.pool.submit(self._step, control, times)
            elif self.pending is not None:  # the first frame (reset) or a respawn: show it instead of stepping
                frame = self.pending
            else:
                frame = self._step(control, times)
        except self.end_errors as end:  # the replay ran out of frames: a normal end
            return _finished(end)
        self.pending = None

        rendered = self._render(frame, times)
        if self.draw:
            self._display(frame, rendered, times)
        self.profiler.end_frame()
        if self.recording.active:
            start = perf_counter_ns()
            self.recording.add(frame, rendered, dict(times.ms), stopping=lambda: bool(self.stop.requested))
            times.add("record", start, perf_counter_ns())
        self.frame, self.rendered, self.timings = frame, rendered, times.ms
        self.ticks += 1
        self.stats.add(frame)
        self.hud.tick(milliseconds / 1000.0)

        if future is not None:
            try:
                self.pending = future.result()
            except self.end_errors as end:
                return _finished(end)
        if not self.headless:
            self.pacer.pace(frame)
        return self.config.frames is None or self.ticks < self.config.frames

    def _step(self, control, times: StageTimes):
        start = perf_counter_ns()
        frame = self.source.step(control)
        times.add("source", start, perf_counter_ns())
        # Sub-spans a source reports like the Renderer does (CARLA: tick, sensor wait), for the profiler;
        # the procedural world and a replay report none.
        for name, span in (getattr(self.source, "last_timings", None) or {}).items():
            if span is not None:
                self.profiler.add_span(f"source.{name}", span[0], span[1])
        return frame

    def _render(self, frame, times: StageTimes):
        renderer = self.renderer
        start = perf_counter_ns()
        try:
            # A torch.compile'd renderer's first frame compiles the generator (19 s for the cpu preset on
            # a 2-core CPU): a stop signal meanwhile ends the drive at once (StopSignals) instead of
            # after it. Set inside the try, so that no signal can leave it set. TensorRT's first frame
            # captures a CUDA graph instead: quick, and not known to be safe to cut, so not included.
            self.stop.compiling = (renderer.backend_name == "torch" and renderer.compiled
                                   and renderer.frames_rendered == 0)
            with self.profiler.device_range("render"):  # CUDA events + NVTX when profiling on a GPU
                rendered = renderer.render(frame)
        finally:
            self.stop.compiling = False
        times.add("render", start, perf_counter_ns())
        for name in STAGES:
            span = renderer.last_timings.get(name)
            if span is not None:
                times.add(name, span[0], span[1])
        return rendered

    def _display(self, frame, rendered, times: StageTimes) -> None:
        start = perf_counter_ns()
        images = {"labels": colorize(frame.labels), "render": rendered}
        if frame.rgb is not None:
            images["engine"] = frame.rgb
        self.rects = draw_panes(self.surface, self.layout, images)
        spare = free_cell(self.layout, self.surface.get_size(), self.size, len(images))
        self.hud.draw(self.surface, self.hud_lines(frame), self.model.banner(), self.recording.text(),
                      origin=spare[:2] if spare else (0, 0))
        pygame.display.flip()
        times.add("display", start, perf_counter_ns())

    def hud_lines(self, frame) -> list:
        return hud_lines(frame, self.stats.rates(), self.timings, source_name=self.source_name,
                         threaded=self.pool is not None, model_label=self.model.label, renderer=self.renderer,
                         size=self.size, layout=self.layout, autopilot=self.keyboard.autopilot,
                         profiler=profiler_hud_lines(self.profiler) if self.config.profile else [])

    def session_meta(self) -> dict:
        """What a session records about this drive (the recorder adds versions, size and times)."""
        return session_meta(self.source_name, self.config, self.source, self.model, self.renderer,
                            threaded=self.pool is not None)

    # -- the one-shot keys (game.keys.keyboard names them); each says what it did in a notice ----------

    def _respawn(self) -> None:
        respawn = getattr(self.source, "respawn", None)  # a source may have no spawn points
        if respawn is None:
            self.hud.notify(f"the {self.source_name} source cannot respawn", color=RED)
            return
        self.pending = respawn()  # a cut frame, shown next instead of a step: the Renderer drops its history
        self.pacer.restart()
        self.hud.notify("Respawned (renderer history reset)")

    def _weather(self, step: int) -> None:
        names = getattr(self.source, "weather_names", None)  # a source may have no weather presets
        if not names:
            self.hud.notify(f"the {self.source_name} source has no weather presets", color=RED)
            return
        self.weather = (self.weather + step) % len(names)
        self.hud.notify(f"Weather: {self.source.set_weather(self.weather) or names[self.weather]}")

    def _layout(self) -> None:
        self.layout = (self.layout + 1) % len(LAYOUTS)
        self.hud.notify(f"Layout: {LAYOUTS[self.layout]}")

    def _history(self) -> None:
        self.renderer.history_enabled = not self.renderer.history_enabled
        mode = "recurrent" if self.renderer.history_enabled else "frame-by-frame (expect flicker)"
        self.hud.notify(f"Renderer: {mode}")

    def _backend(self) -> None:
        """Rebuild the Renderer on the next available backend; keep the old one when that fails."""
        names = [*available_backends(self.config.device), *(["remote"] if self.config.server else [])]
        current = self.renderer.backend_name
        if not [name for name in names if name != current]:
            self.hud.notify(f"{current} is the only backend available here")
            return
        candidate = self.backend_tried = next_backend(names, current, self.backend_tried)
        try:
            renderer = make_renderer(self.model.model, candidate, self.config.device, self.config.precision,
                                     self.size, self.config.compile, self.config.server)
        except LaunchError as error:
            self.hud.notify(f"backend {candidate} failed; staying on {current}", color=RED, seconds=5.0)
            print(f"backend switch failed: {error}")
            return
        renderer.history_enabled = self.renderer.history_enabled
        self.renderer.close()
        self.renderer = renderer
        compiled = ", compiled: its first frame compiles, tens of seconds" if renderer.compiled else ""
        self.hud.notify(f"Backend: {renderer.backend_name} on {renderer.device_name} ({renderer.precision}{compiled})")

    def _toggle_hud(self) -> None:
        self.hud.show_info = not self.hud.show_info

    def _toggle_help(self) -> None:
        self.hud.show_help = not self.hud.show_help

    _ACTIONS = {
        "autopilot": lambda app: app.hud.notify(f"Autopilot {'On' if app.keyboard.autopilot else 'Off'}"),
        "reverse": lambda app: app.hud.notify(f"Reverse {'On' if app.keyboard.reverse else 'Off'}"),
        "respawn": _respawn,
        "record": lambda app: app.recording.toggle(app.session_meta(), app.renderer.compiled),
        "weather_next": lambda app: app._weather(+1),
        "weather_prev": lambda app: app._weather(-1),
        "layout": _layout,
        "history": _history,
        "backend": _backend,
        "hud": _toggle_hud,
        "help": _toggle_help,
    }

    # -- the end ---------------------------------------------------------------------------------------

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
        return bool(self.stop.requested and goal and self.ticks < goal)

    def close(self) -> bool:
        """Idempotent teardown, in the order that loses nothing; one failing step does not skip the
        others (the source must be closed even when, say, the disk is full). False when a step failed."""
        if self.stop.closing:
            return True
        self.stop.closing = True
        ok = True
        for step in (self._join_worker, self._save_screenshot, self._finish_recording, self.source.close,
                     self._write_report, self.renderer.close):
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
        self.recording.close(self.renderer.compiled)

    def _write_report(self) -> None:
        if self.config.profile:
            # The report says whether the run measured what was asked (game.profiler.report.run_status).
            ended_by = SIGNAL_NAMES[self.stop.requested] if self.stop.requested else None
            meta = {**self.session_meta(), "resolution": list(self.size),
                    "frames_requested": self.frames_goal, "ended_by": ended_by}
            # write_report prints the table and where the files went; no second line here
            write_report(self.profiler, self.config.report or stamped_folder("reports"), meta)


def _finished(end: BaseException) -> bool:
    print(f"replay finished: {end}")
    return False

