"""The source factory (game.startup.sources): a server that is not CARLA, a bad host, a --filter with no
car, a missing replay, a replay resampled to --res; and --source auto, which finds a CARLA server (our
wire-protocol stand-in, so no Unreal) and drives it through the real carla client, or with nothing
listening falls back to the procedural world and says why."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

pygame = pytest.importorskip("pygame")

from game.startup.cli import LaunchError, parse_args  # noqa: E402
from game.startup.main import main  # noqa: E402
from support.carla import free_port_pair  # noqa: E402
from support.game import RES, headless_env, make_app, one_line_error, tiny_model_path  # noqa: E402,F401 (fixtures)


class _Server:
    """A TCP server on 127.0.0.1 that answers every connection with fixed bytes; by_line: only once a
    line has ended, as an HTTP server does."""

    def __init__(self, reply: bytes, by_line: bool = False) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        threading.Thread(target=self._serve, args=(reply, by_line), daemon=True).start()

    def _serve(self, reply: bytes, by_line: bool) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            with connection, connection.makefile("rb") as reader:
                if by_line:
                    reader.readline()
                else:
                    connection.recv(64)
                connection.sendall(reply)

    def close(self) -> None:
        self.socket.close()


def test_a_server_that_is_not_carla_is_refused_before_libcarla(headless_env):
    from carla_bridge.core.net import not_carla_reason
    from game.startup.sources import make_source

    web = _Server(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")  # aborted the process (134)
    rpc = _Server(b"\x94\x01\x00\xc0\xa60.9.16")  # msgpack-rpc response [1, 0, nil, "0.9.16"]
    try:
        reason = not_carla_reason("127.0.0.1", web.port)
        assert reason == "it answered 'HTTP/1.1 400 Bad Request', not a msgpack-rpc reply"
        assert not_carla_reason("127.0.0.1", rpc.port) is None  # a CARLA-like reply passes
        pytest.importorskip("carla", reason="CarlaSource does the probe; the carla client is not installed")
        with pytest.raises(LaunchError, match=r"is not CARLA \(it answered 'HTTP/1.1 400 Bad Request'"):
            make_source(parse_args(["--source", "carla", "--port", str(web.port), "--res", RES]), (64, 32))
        choice = make_source(parse_args(["--port", str(web.port), "--res", RES]), (64, 32))
        try:  # --source auto falls back to the built-in world and says why
            assert choice.name == "procedural" and "is not CARLA" in choice.reason
        finally:
            choice.source.close()
    finally:
        web.close()
        rpc.close()


def test_a_line_based_server_is_told_from_carla_at_once(headless_env):
    from carla_bridge.core.net import not_carla_reason

    web = _Server(b"HTTP/1.0 400 Bad request syntax\r\n\r\n", by_line=True)  # what `python3 -m http.server` says
    try:
        started = time.monotonic()
        reason = not_carla_reason("127.0.0.1", web.port, timeout_s=5.0)
        # the probe's msgid 10 is the line end the server waits for, so it answers at once; without it the
        # probe would wait out its time-out, and then the CARLA client its own (2 s, then 10 s)
        assert reason == "it answered 'HTTP/1.0 400 Bad request syntax', not a msgpack-rpc reply"
        assert time.monotonic() - started < 3.0  # not the probe's 5 s time-out waited out
    finally:
        web.close()


def test_a_host_that_does_not_resolve_is_named(headless_env, capsys):
    pytest.importorskip("carla", reason="CarlaSource says it; the carla client is not installed")
    from game.startup.sources import make_source

    with pytest.raises(LaunchError, match=r"^the host name 'nosuchhost\.invalid' does not resolve \(.*\): "
                                          r"check --host"):  # was "no CARLA server answers ... start CARLA"
        make_source(parse_args(["--source", "carla", "--host", "nosuchhost.invalid", "--res", RES]), (64, 32))
    choice = make_source(parse_args(["--host", "nosuchhost.invalid", "--res", RES]), (64, 32))
    try:
        assert choice.name == "procedural" and "'nosuchhost.invalid' does not resolve" in choice.reason
    finally:
        choice.source.close()


def test_carla_filter_that_matches_no_car_is_one_line(monkeypatch):
    import game.startup.sources as carla_source
    from game.startup.sources import make_source

    def no_car(**options):  # what CarlaSource raises for --filter walker.*: a launch error, not a traceback
        raise ValueError(f"--filter {options['vehicle_filter']!r} matches no 4-wheeled vehicle blueprint")

    monkeypatch.setattr(carla_source, "CarlaSource", no_car)
    with pytest.raises(LaunchError, match=r"--filter 'walker\.\*' matches no 4-wheeled"):
        make_source(parse_args(["--source", "carla", "--filter", "walker.*"]), (64, 32))


def test_missing_replay_names_the_folder_once(headless_env, capsys):
    assert main(parse_args(["--headless", "--replay", "nope"])) == 2
    err = one_line_error(capsys, "--replay nope: not a session")
    assert err.count("nope") == 1  # was "--replay nope: nope: not a session"


def test_replay_is_resampled_to_res(make_app):
    app = make_app("--headless", "--frames", "2", "--record", "sessions")
    app.run()
    (session,) = Path("sessions").iterdir()
    # a replay honours --res: it resamples the recorded frames
    replay = make_app("--headless", "--source", "replay", "--replay", str(session), "--res", "128x64")
    assert replay.size == (128, 64) and "resampled to 128x64" in replay.source_reason
    assert replay.run() == 0 and replay.rendered.shape == (64, 128, 3)


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


def test_an_mcap_recording_replays_in_the_drive(make_app):
    app = make_app("--headless", "--frames", "3", "--record", "sessions", "--record-format", "mcap")
    assert app.run() == 0
    (session,) = Path("sessions").glob("*.mcap")
    replay = make_app("--headless", "--source", "replay", "--replay", str(session))
    assert replay.source_reason.endswith("(3 frames)") and replay.size == (64, 32)
    assert replay.run() == 0 and replay.ticks == 3
