"""One launch for a parsed GameConfig: check its outputs, then run what it asks for (the drive, the
offline export of a recorded session, or the backend comparison), and turn whatever stops it before
the drive starts into one line and an exit status.

    argv -> game.startup.cli.parse_args -> GameConfig -> check_outputs -> App(config).run()
                                                                       -> run_export(config)
                                                                       -> run_backend_comparison(config)

The statuses: 2 for a start-up problem (a bad flag, a corrupt session), 130 for Ctrl+C or SIGTERM
before the drive (or during an export), otherwise the drive's own (App.run). What happens before an
App exists, and when none ever does, reads here.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from carla_bridge.core.files import stamped_folder
from carla_bridge.session import SessionFormatError
from game.app.app import App
from game.app.timing import warmup_frames
from game.export import DEFAULT_EXPORT_FIT, export_session
from game.profiler.compare import run_comparison
from game.signals import TERMINATED_AT_START_UP, interrupt_name, interruption_in, raise_terminated
from game.startup.cli import GameConfig, LaunchError, error_line
from game.startup.outputs import check_outputs, remove_empty
from game.startup.rendering import (COMPILE_WAIT, check_size, default_resolution, load_model, make_renderer,
                                    resolve_device)
from game.startup.sources import make_source


def main(config: GameConfig) -> int:
    """Run the game (or the export, or the backend comparison) for a parsed config; start-up problems
    print one line and return 2. Ctrl+C or SIGTERM before the drive starts (loading the model,
    connecting) or during an export prints one line and returns 130; SIGTERM is raised like Ctrl+C
    there so that App.__init__'s clean-up closes the source (which restores a CARLA server's settings)."""
    if config.verbose:  # as manual_control.py -v: the parts' loggers (carla_bridge.*) at DEBUG
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.DEBUG)
    in_main = threading.current_thread() is threading.main_thread()
    TERMINATED_AT_START_UP.clear()
    previous = signal.signal(signal.SIGTERM, raise_terminated) if in_main else None
    try:
        return _main(config)
    except KeyboardInterrupt as interrupt:
        return _interrupted(config, interrupt)
    except Exception as error:  # an import the signal cut short wraps it (see interruption_in)
        interrupt = interruption_in(error)
        if interrupt is None:
            raise
        return _interrupted(config, interrupt, getattr(error, "__notes__", None))  # only some carry notes
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupted(config: GameConfig, interrupt: KeyboardInterrupt, notes: list[str] | None = None) -> int:
    """Say in one line what Ctrl+C or SIGTERM stopped; exit status 130."""
    if _exporting(config):
        # export_session notes where it left the frames written so far (not at the final path)
        kept = notes or getattr(interrupt, "__notes__", ["nothing was exported"])
        what = "; ".join(["the export stopped", *kept])
    elif config.backend == "all":
        what = "the backend comparison stopped"
    else:
        what = "stopped before the drive started"
    print(f"{interrupt_name(interrupt)}: {what}", file=sys.stderr)
    return 130


def _main(config: GameConfig) -> int:
    created = []
    try:
        if config.backend == "all":
            refuse_flags_the_comparison_ignores(config)  # before check_outputs makes their folders
        created = check_outputs(config)
        if _exporting(config):
            return run_export(config)
        if config.backend == "all":
            return run_backend_comparison(config)
        app = App(config)
    except (LaunchError, *((SessionFormatError,) if config.replay else ())) as error:
        remove_empty(created)  # e.g. --record DIR made for a drive that never started
        print(error_line(str(error)), file=sys.stderr)  # e.g. a corrupt first frame of the --replay session
        return 2
    except BaseException:  # Ctrl+C or SIGTERM while starting
        remove_empty(created)
        raise
    try:
        return app.run()
    finally:  # a recording cancelled before its first frame removes its session, not the --record DIR
        remove_empty(created)  # that this run made: only folders still empty, which hold no result


def _exporting(config: GameConfig) -> bool:
    return config.export is not None or config.export_frames is not None


def run_export(config: GameConfig) -> int:
    """--replay DIR --export OUT.mp4 / --export-frames DIR: render the session offline and exit.
    --res resamples the session (ReplaySource(size=...)), as in the drive."""
    model = load_model(config)
    resolve_device(config)
    recorded = _replay_size(config)  # opened even with --res: a bad session fails here, before any render
    size = config.res or recorded
    check_size(model, size, "--res" if config.res else f"--replay {config.replay}")
    renderer = make_renderer(model.model, config.backend, config.device, config.precision, size, config.compile,
                             config.server)
    if model.untrained:
        print(f"warning: exporting with an UNTRAINED {model.preset} model", file=sys.stderr)
    elif model.barely_trained:
        print(f"warning: exporting with a {model.preset} model trained for only {model.steps} steps", file=sys.stderr)
    try:
        export_session(config.replay, renderer, out_mp4=config.export, frames_dir=config.export_frames,
                       fit=config.export_size or DEFAULT_EXPORT_FIT)
    except (OSError, RuntimeError, SessionFormatError) as error:  # disk full, ffmpeg gone, a corrupt
        # session file: say so, no traceback, and where the frames rendered before it are
        if interruption_in(error) is not None:
            raise  # Ctrl+C in an import the export started: main says "the export stopped"
        raise LaunchError("; ".join([f"export failed: {error}", *getattr(error, "__notes__", [])])) from None
    for target in (config.export, config.export_frames):
        if target is not None:
            print(f"exported: {target}")
    return 0


def run_backend_comparison(config: GameConfig) -> int:
    """--profile --backend all: the profiler renders the same frames with every backend."""
    model = load_model(config)
    device = resolve_device(config)
    size = config.res or (_replay_size(config) if config.replay else default_resolution(model, device))
    check_size(model, size, "--res" if config.res or not config.replay else f"--replay {config.replay}")
    frames = config.frames or 120
    if config.compile and frames < 2:  # compare_backends measures at least one frame: it would be the compile
        raise LaunchError(f"--frames {frames} --compile: the first frame only compiles, so nothing would be "
                          f"measured; pass --frames 2 or more (the compile is left out of the figures)")
    report_dir = config.report or stamped_folder("reports")  # the default --help promises
    if config.compile:  # the torch row starts with the compile: say so, or the console sits silent
        print(f"--compile: {COMPILE_WAIT}")
    try:
        rows = run_comparison(model.model, size, frames=frames, warmup_frames=warmup_frames(frames, config.compile),
                              session=config.replay, seed=config.seed or 0, device=config.device,
                              precision=config.precision, report_dir=report_dir, compile=config.compile,
                              meta={"model": model.label, "model_path": str(model.path) if model.path else None,
                                    "untrained": model.untrained, "compile": config.compile})
    except OSError as error:  # the disk filled up, or the folder went away, while writing a report
        raise LaunchError(f"--report {report_dir}: {error}") from None
    if all(row.get("error") for row in rows):  # nothing measured: a script must not take it as done
        print(error_line("no backend could be measured (see 'failed or not run' above)"), file=sys.stderr)
        return 1
    return 0


def refuse_flags_the_comparison_ignores(config: GameConfig) -> None:
    """--backend all renders prepared frames with each backend in turn: there is no drive to record,
    screenshot or pipeline, so those flags are refused rather than dropped."""
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
