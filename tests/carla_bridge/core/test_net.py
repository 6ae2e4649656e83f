"""carla_bridge.core.net.ConnectionWatch: an idle connection that tells when the server's end closed."""

from __future__ import annotations

import socket
import time

from carla_bridge.core.net import ConnectionWatch


def test_the_watch_sees_the_server_close_its_end_and_not_before():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        watch = ConnectionWatch("127.0.0.1", listener.getsockname()[1])
        accepted, _ = listener.accept()
        assert not watch.closed()
        accepted.close()
        deadline = time.monotonic() + 2.0
        while not watch.closed() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watch.closed()
        watch.close()
