"""Ctrl+C and SIGTERM, from start-up to the end of the teardown.

During start-up (loading torch and the model, connecting to CARLA) and during an export, launch.py and
game.startup.main install ``raise_terminated``: SIGTERM is raised like Ctrl+C, so the same clean-up runs
(App.__init__ closes a source it opened, which restores a CARLA server's settings). During the drive
App.run installs ``StopSignals``. ``interruption_in`` finds a signal that a library wrapped
in another exception. Imports nothing of the project: the start-up, the App and the backend comparison
all use it.
"""

from __future__ import annotations

import os
import signal
import threading

SIGNAL_NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl+C"}


class Terminated(KeyboardInterrupt):
    """SIGTERM during start-up or an export, raised like Ctrl+C so the same clean-up runs."""


def interrupt_name(interrupt: KeyboardInterrupt) -> str:
    """How to name the signal behind a KeyboardInterrupt to the user: "SIGTERM" or "Ctrl+C"."""
    return SIGNAL_NAMES[signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT]


# SIGTERMs raised as Terminated during start-up. Kept as well as raised: a library that swallows the
# exception (numba's compiler callbacks print "Exception ignored ... Terminated") would make the signal
# vanish and the drive run to its end. App.run stops at once when one is here.
TERMINATED_AT_START_UP: list[int] = []


def raise_terminated(signum, frame) -> None:
    TERMINATED_AT_START_UP.append(signum)
    raise Terminated


def interruption_in(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl+C (KeyboardInterrupt) or SIGTERM (Terminated) that ``error`` wraps, if any.

    A signal that lands while an extension module initialises comes back wrapped: pybind11 turns it into
    ImportError("initialization failed") (onnxruntime, imported as the renderer starts), and a class
    body's __set_name__ into RuntimeError (numba). Both carry the interruption as __cause__/__context__.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


class StopSignals:
    """Ctrl+C and SIGTERM during the drive (App.run installs this): both end the drive at the next tick
    boundary, so no stage is cut in half (a KeyboardInterrupt inside the recorder or a backend could
    leave a lock held and hang the teardown). While a --compile'd renderer compiles its first frame
    (20 s for the cpu preset on a CPU) they stop at once: a SIGTERM with a 10 s grace (docker stop)
    would otherwise end in SIGKILL and a half-written recording, and cutting the compile loses nothing
    (the frame is neither shown nor recorded yet, and the compiler holds none of the drive's locks).
    A second Ctrl+C stops at once. While closing, one more Ctrl+C only says what is being finished
    (the recording must be finalized, a CARLA server put back out of synchronous mode); a second one
    abandons it."""

    def __init__(self) -> None:
        self.requested = 0  # the signal that asked the drive to stop (0: none)
        self.compiling = False  # the renderer's first, compiling frame is in progress
        self.closing = False  # the teardown has begun
        self._warned = False

    def install(self) -> dict:
        """Handle both signals; returns the handlers it replaced, by signal, for restore(). A SIGTERM
        that a library swallowed during start-up (TERMINATED_AT_START_UP) stops the drive at once."""
        if TERMINATED_AT_START_UP:
            self.requested = TERMINATED_AT_START_UP.pop()
            TERMINATED_AT_START_UP.clear()
        if threading.current_thread() is not threading.main_thread():  # signal.signal would raise
            return {}
        return {signum: signal.signal(signum, self._handle) for signum in (signal.SIGTERM, signal.SIGINT)}

    @staticmethod
    def restore(previous: dict) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, _frame) -> None:
        if self.compiling and not self.closing:
            self.requested = signum
            raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        if self.closing and signum == signal.SIGINT and not self._warned:
            self._warned = True  # os.write: print() is not reentrant, the main thread may be in one
            os.write(2, b"still closing (finishing the recording, closing the source); Ctrl+C again to abandon\n")
            return
        if (self.requested or self.closing) and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signum
