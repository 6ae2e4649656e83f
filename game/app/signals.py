"""Ctrl+C and SIGTERM, from start-up to the end of the teardown.

Two stretches, two handlers. During start-up (loading torch and the model, connecting to CARLA) and
during an export, game.startup.main installs ``raise_terminated``: SIGTERM is raised like Ctrl+C, so the same
clean-up runs (App.__init__ closes a source it opened, which restores a CARLA server's settings).
During the drive, App.run installs ``catch_stop_signals``: both signals end the drive at the next
tick boundary, or at once while a --compile'd renderer compiles its first frame. Naming a signal and
finding one a library wrapped in another exception is game.interrupts'. Kept in one file, away from
the app and the entry point, because both use it and the reasons (which library swallowed what, which
lock a signal can leave held) are the same story.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import TYPE_CHECKING

from game.interrupts import Terminated

if TYPE_CHECKING:
    from game.app.app import App

# SIGTERMs raised as Terminated during start-up. Kept as well as raised: a library that swallows the
# exception (numba's compiler callbacks print "Exception ignored ... Terminated") made the signal vanish
# and the drive ran to its end. App.run stops at once when one is here.
TERMINATED_AT_START_UP: list[int] = []


def raise_terminated(signum, frame) -> None:
    TERMINATED_AT_START_UP.append(signum)
    raise Terminated


def catch_stop_signals(app: App) -> dict:
    """SIGTERM and Ctrl+C end the drive at the next tick boundary, so no stage is cut in half (a
    KeyboardInterrupt inside the recorder or a backend could leave a lock held and hang the
    teardown); during a --compile's first frame, which only compiles, they stop at once. A second
    Ctrl+C stops at once. While closing, one more Ctrl+C only says what is being
    finished (it used to abandon the teardown: recording unfinalized, a CARLA server left in
    synchronous mode); a second one abandons it. Returns the handlers it replaced, by signal."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    warned = []

    def stop(signum, _frame) -> None:
        if getattr(app, "compiling", False) and not app._closed:
            # The first frame is compiling the generator (game.app.loop._render): waiting for it left
            # Ctrl+C unanswered for 20 s on a CPU, and a SIGTERM with a 10 s grace (docker stop) ended
            # in SIGKILL and a half-written recording. Cutting it loses nothing: the frame is neither
            # shown nor recorded yet, and the compiler holds none of the drive's locks (the export and
            # the backend comparison already stop at once there).
            app.stop_requested = signum
            raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        if app._closed and signum == signal.SIGINT and not warned:
            warned.append(True)  # os.write: print() is not reentrant, the main thread may be in one
            os.write(2, b"still closing (finishing the recording, closing the source); "
                        b"Ctrl+C again to abandon\n")
            return
        if (app.stop_requested or app._closed) and signum == signal.SIGINT:
            raise KeyboardInterrupt
        app.stop_requested = signum

    return {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
