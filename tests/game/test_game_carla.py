"""--source auto finds a CARLA server (our wire-protocol stand-in, so no Unreal) and drives it through
the real carla client; with nothing listening it falls back to the procedural world and says why."""

from __future__ import annotations

import pytest

pygame = pytest.importorskip("pygame")
from support.carla import free_port_pair  # noqa: E402
from support.game import headless_env, make_app, tiny_model_path  # noqa: E402,F401


def test_auto_falls_back_to_procedural_when_nothing_answers(make_app):
    port, _ = free_port_pair()  # p and p + 1 free: nothing answers there
    app = make_app("--headless", "--source", "auto", "--port", str(port))
    assert app.source_name == "procedural"
    assert app.source_reason == f"procedural world (no CARLA server answered at 127.0.0.1:{port})"


@pytest.mark.carla
def test_auto_drives_the_carla_standin(make_app):
    # The stand-in runs in its own process, as people run it (the CARLA part's test helper).
    from support.carla import StandinProcess, require_carla

    require_carla()
    server = StandinProcess("--seed", "0", "--pedestrians", "0")
    try:
        app = make_app("--headless", "--source", "auto", "--port", str(server.port),
                       "--tm-port", str(server.tm_port))
        assert app.source_name == "carla" and "CARLA at" in app.source_reason
        for _ in range(3):
            assert app.tick()
        assert app.frame.labels.shape == (32, 64) and app.rendered.shape == (32, 64, 3)
        app.close()  # restores the server's settings and destroys the ego before the server stops
    finally:
        assert server.stop() == 0
