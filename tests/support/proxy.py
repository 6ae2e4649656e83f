"""The CARLA proxy run as people run it, ``python -m carla_bridge.proxy``, in a process of its own: the
carla client holds the GIL while it waits on the server, so a proxy in the test process would never
get to answer it (no tests here)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from support.carla import REPO, SERVER_START_TIMEOUT_S, StandinProcess, _read_line, free_port_pair


class ProxyProcess(StandinProcess):
    """The proxy on free ports in front of the server on ``carla_port``; stop(), kill() and errors() as
    the stand-in's."""

    def __init__(self, carla_port: int, model: Path, *extra: str) -> None:  # not super(): it starts a stand-in
        self.port, _ = free_port_pair()
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "carla_bridge.proxy", "--port", str(self.port), "--carla-port", str(carla_port),
             "--model", str(model), "--backend", "torch", "--device", "cpu", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
        self.log: list[str] = []
        self.expected_errors: list[str] = []
        self._stderr = threading.Thread(target=self._drain, daemon=True)
        self._stderr.start()
        ready = _read_line(self.process, SERVER_START_TIMEOUT_S)
        if not ready.startswith("READY"):
            self.kill()
            raise RuntimeError(f"the proxy did not start: {ready!r}\n" + "".join(self.log[-30:]))


@pytest.fixture(scope="module")
def proxy(standin, tiny_model_path):
    """The proxy in front of the module's stand-in, rendering with the tiny model; it must stop cleanly."""
    server = ProxyProcess(standin.port, tiny_model_path)
    yield server
    assert server.stop() == 0, "".join(server.log[-30:])
    assert not server.errors(), "".join(server.errors())
