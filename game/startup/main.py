"""One launch for a parsed GameConfig: pick what it runs (the drive, the export, the backend
comparison), and turn whatever stops it before the drive starts into one line and an exit status.

launch.py calls ``main``; game.app.app's App runs the drive itself, game.startup.modes the other two. The
statuses: 2 for a start-up problem (a bad flag, a corrupt session), 130 for Ctrl+C or SIGTERM before
the drive (or during an export), otherwise the drive's own (App.run). Kept apart from the App so that
what happens before an App exists, and when none ever does, reads in one place.
"""

from __future__ import annotations

import signal
import sys
import threading

from game.app.app import App, bad_session_errors
from game.startup.cli import GameConfig, LaunchError
from game.startup.modes import refuse_flags_the_comparison_ignores, run_backend_comparison, run_export
from game.startup.outputs import check_outputs, remove_empty
from game.app.signals import TERMINATED_AT_START_UP, raise_terminated
from game.interrupts import interrupt_name, interruption_in


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
    print(f"{interrupt_name(interrupt)}: {what}", file=sys.stderr)
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
    except (LaunchError, *bad_session_errors(config.replay is not None)) as error:
        remove_empty(created)  # e.g. --record DIR made for a drive that never started
        print(f"error: {error}", file=sys.stderr)  # e.g. a corrupt first frame of the --replay session
        return 2
    except BaseException:  # Ctrl+C or SIGTERM while starting
        remove_empty(created)
        raise
    try:
        return app.run()
    finally:  # a recording cancelled before its first frame removes its session, not the --record DIR
        remove_empty(created)  # that this run made: only folders still empty, which hold no result
