"""Ctrl+C and SIGTERM as exceptions: which one stopped a run, and how to name it to the user.

Below both the app (game.app.signals installs the handlers) and the profiler (the backend comparison
stops on either and says which), so neither imports the other for it.
"""

from __future__ import annotations

import signal

SIGNAL_NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl+C"}


class Terminated(KeyboardInterrupt):
    """SIGTERM during start-up or an export, raised like Ctrl+C so the same clean-up runs."""


def interrupt_name(interrupt: KeyboardInterrupt) -> str:
    """How to name the signal behind a KeyboardInterrupt to the user: "SIGTERM" or "Ctrl+C"."""
    return SIGNAL_NAMES[signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT]


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
