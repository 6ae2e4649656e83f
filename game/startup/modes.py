"""The launches that are not a drive: the offline export of a recorded session (--replay DIR --export
OUT.mp4 / --export-frames DIR) and the backend comparison (--profile --backend all).

Both load the model and check the size as the drive does, then hand over to another part (the
session export in game/export.py, the profiler's comparison) and return an exit code; neither opens
a window or keeps an App. Kept apart from game/app/app.py, which is the interactive drive only.
"""

from __future__ import annotations

import sys

from game.app.app import bad_session_errors, stamped, warmup_frames
from game.startup.cli import GameConfig, LaunchError
from game.startup.rendering import COMPILE_WAIT, check_size, default_resolution, load_model, make_renderer, resolve_device
from game.interrupts import interruption_in
from game.profiler.compare import run_comparison
from game.startup.sources import make_source


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
    renderer = make_renderer(model.model, config.backend, config.device, config.precision, size, config.compile)
    if model.untrained:
        print(f"warning: exporting with an UNTRAINED {model.preset} model", file=sys.stderr)
    elif model.barely_trained:
        print(f"warning: exporting with a {model.preset} model trained for only {model.steps} steps", file=sys.stderr)
    try:
        export_session(config.replay, renderer, out_mp4=config.export, frames_dir=config.export_frames)
    except (OSError, RuntimeError, *bad_session_errors(True)) as error:  # disk full, ffmpeg gone, a corrupt
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
    size = config.res or (_replay_size(config) if config.replay else default_resolution(model.preset, device))
    check_size(model, size, "--res" if config.res or not config.replay else f"--replay {config.replay}")
    frames = config.frames or 120
    if config.compile and frames < 2:  # compare_backends measures at least one frame: it would be the compile
        raise LaunchError(f"--frames {frames} --compile: the first frame only compiles, so nothing would be "
                          f"measured; pass --frames 2 or more (the compile is left out of the figures)")
    report_dir = config.report or stamped("reports")  # the default --help promises
    if config.compile:  # the torch row starts with the compile: without this the console sat silent
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
        print("error: no backend could be measured (see 'failed or not run' above)", file=sys.stderr)
        return 1
    return 0


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
