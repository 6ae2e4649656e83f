"""A server's command-line life, shared by ``python -m carla_bridge.standin`` and ``... .proxy``: start,
print ``READY <host>:<port>`` on stdout once it listens (scripts and tests wait for that line), serve
until SIGTERM or Ctrl+C, then stop (connections closed; the caller exits with status 0)."""

from __future__ import annotations

import logging
import signal
from typing import Protocol


class Server(Protocol):
    host: str
    port: int

    def start(self) -> object: ...

    def stop(self) -> None: ...

    def wait(self, timeout_s: float | None = None) -> bool: ...


def serve_until_signalled(server: Server, log: logging.Logger) -> None:
    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: shutting down", signum)
        server.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    print(f"READY {server.host}:{server.port}", flush=True)
    try:
        while not server.wait(0.5):
            pass
    finally:
        server.stop()
