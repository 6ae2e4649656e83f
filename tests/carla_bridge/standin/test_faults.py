"""The stand-in's part of the fault suite (README, Reliability): ``python -m carla_bridge.standin`` in a
process of its own, driven into a failure by real clients (the carla client, raw msgpack-rpc, raw
TCP), each test asserting the outcome and bounding every wait."""

from __future__ import annotations

import queue
import signal
import socket
import struct
import time

import pytest

from support.carla import StandinProcess, require_carla, rss_mb

msgpack = pytest.importorskip("msgpack")

from support.msgpack_rpc import RawRpc  # noqa: E402

pytestmark = [pytest.mark.fault, pytest.mark.carla]


def _served(server: StandinProcess, timeout_s: float = 5.0) -> None:
    """A fresh carla client gets the world, its settings and a tick (rpc and the episode stream)."""
    carla = require_carla()
    client = carla.Client("127.0.0.1", server.port)
    client.set_timeout(timeout_s)
    world = client.get_world()
    assert not world.get_settings().synchronous_mode
    assert world.wait_for_tick(timeout_s).frame > 0


def _stopped_cleanly(server: StandinProcess) -> None:
    started = time.monotonic()
    assert server.stop(timeout_s=10.0) == 0, "".join(server.log[-30:])
    assert time.monotonic() - started < 10.0
    assert not [line for line in server.log if "Traceback" in line], "".join(server.log[-60:])


def test_file_descriptor_exhaustion_does_not_end_serving():
    """With 64 descriptors, 80 connections to each port run the server out of them (accept: EMFILE);
    once they close, a fresh client is served again, and the server said what happened, once."""
    server = StandinProcess("--pedestrians", "0", nofile=64)
    try:
        held = []
        for _ in range(80):
            held.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
            held.append(socket.create_connection(("127.0.0.1", server.port + 1), timeout=5))
        time.sleep(1.0)  # the accept loops meet EMFILE
        for sock in held:
            sock.close()
        _served(server)
        warnings = [line for line in server.log if "file descriptors" in line]
        assert 1 <= len(warnings) <= 6, "".join(server.log[-40:])
    finally:
        server.kill()


def test_subscriptions_to_streams_that_do_not_exist_are_closed():
    server = StandinProcess("--pedestrians", "0")
    try:
        for stream_id in (0, 99999, 2**32 - 1):
            with socket.create_connection(("127.0.0.1", server.port + 1), timeout=3) as sub:
                sub.sendall(struct.pack("<I", stream_id))
                assert sub.recv(16) == b"", f"stream {stream_id}: the subscription was kept"
        _served(server)
    finally:
        _stopped_cleanly(server)


def test_unknown_rpcs_are_counted_in_bounded_memory_and_logged_briefly():
    """200 one-MiB method names, names that are lists and maps, and 3000 distinct names: memory and the
    log stay small, every call is answered with an error, SIGTERM ends the server with status 0."""
    server = StandinProcess("--pedestrians", "0")
    try:
        with RawRpc(server.port) as rpc:
            assert rpc.request("version", [[False]])[2:] == [None, [[1, "0.9.16"]]]
            before = rss_mb(server.process.pid)
            for i in range(200):
                kind, _, error, result = rpc.request(f"{i:03d}" + "x" * (1 << 20), [[False], "y" * (1 << 16)])
                assert kind == 1 and error is None and "is not implemented" in str(result)
                assert len(str(result)) < 300
            grown = rss_mb(server.process.pid) - before
            for name in (["get", "world"], {"a": 1}, 7, None, b"\xff" * 100):
                _, _, error, result = rpc.request(name, [[False]])
                assert (error or result) and len(str(error or result)) < 300
            for i in range(3000):
                rpc.request(f"no_such_rpc_{i}", [[False]])
            _, _, error, result = rpc.request("version", [[False]])
            assert result == [[1, "0.9.16"]]
        assert grown < 40.0, f"RSS grew {grown:.0f} MB over 200 one-MiB names"
        _stopped_cleanly(server)
        log_bytes = sum(len(line) for line in server.log)
        assert log_bytes < 200_000, f"{log_bytes} bytes of log; tail:\n" + "".join(server.log[-5:])[-3000:]
        assert any("unknown RPCs were called" in line for line in server.log)
    finally:
        server.kill()


GARBAGE = [
    b"\xc1" * 64,  # 0xc1 is no msgpack type
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    msgpack.packb([0, 1, "version"])[:-3],  # a request cut short, then the connection closes
    b"\xdb\xff\xff\xff\xff" + b"x" * 1000,  # a str claiming 4 GiB
    b"\xdd\x00\x10\x00\x00",  # an array claiming a million items, none sent
    msgpack.packb("z" * (1 << 20)),  # a whole message that is no request
    msgpack.packb([0, 1, "get_actors_by_id", 5]),  # params not a list
    msgpack.packb([0, "msgid", "version", [[False]]]),
    msgpack.packb([9, 1, 2, 3, 4]),
]


def test_garbage_on_both_ports_leaves_the_server_serving():
    server = StandinProcess("--pedestrians", "0")
    server.expected_errors.append("")  # errors are this test's point; tracebacks are checked below
    try:
        for data in GARBAGE:
            for port in (server.port, server.port + 1):
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    try:
                        sock.sendall(data)
                        sock.shutdown(socket.SHUT_WR)
                        sock.recv(1 << 16)
                    except OSError:  # the server may have closed it already
                        pass
        _served(server)
        with RawRpc(server.port) as rpc:
            assert rpc.request("version", [[False]])[3] == [[1, "0.9.16"]]
    finally:
        _stopped_cleanly(server)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_signal_with_clients_connected_exits_0_without_a_traceback(signum):
    carla = require_carla()
    server = StandinProcess("--pedestrians", "0")
    try:
        client = carla.Client("127.0.0.1", server.port)
        client.set_timeout(5.0)
        world = client.get_world()
        camera_bp = world.get_blueprint_library().find("sensor.camera.semantic_segmentation")
        camera_bp.set_attribute("image_size_x", "32")
        camera_bp.set_attribute("image_size_y", "16")
        camera = world.spawn_actor(camera_bp, carla.Transform(carla.Location(z=2.0)))
        frames: queue.Queue = queue.Queue()
        camera.listen(frames.put)
        frames.get(timeout=10.0)
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(3)]
        server.process.send_signal(signum)
        server.process.wait(timeout=10.0)
        for sock in idle:
            sock.close()
    finally:
        server.kill()
    assert server.process.returncode == 0, "".join(server.log[-30:])
    assert not [line for line in server.log if "Traceback" in line], "".join(server.log[-60:])


def test_three_streaming_clients_each_get_every_frame_in_order():
    """Three carla clients, a camera listening on each, one of them ticking the synchronous world:
    every camera gets every tick's frame, in order."""
    carla = require_carla()
    server = StandinProcess("--pedestrians", "0")
    ticks = 15
    try:
        clients = [carla.Client("127.0.0.1", server.port) for _ in range(3)]
        worlds = []
        for c in clients:
            c.set_timeout(10.0)
            worlds.append(c.get_world())
        settings = worlds[0].get_settings()
        settings.synchronous_mode, settings.fixed_delta_seconds = True, 0.05
        worlds[0].apply_settings(settings)
        received: list[queue.Queue] = []
        cameras = []  # a sensor object that goes out of scope stops listening
        for i, world in enumerate(worlds):
            camera_bp = world.get_blueprint_library().find("sensor.camera.semantic_segmentation")
            camera_bp.set_attribute("image_size_x", "32")
            camera_bp.set_attribute("image_size_y", "16")
            camera = world.spawn_actor(camera_bp, carla.Transform(carla.Location(x=5.0 * i, z=2.0)))
            frames: queue.Queue = queue.Queue()
            camera.listen(lambda image, frames=frames: frames.put(image.frame))
            received.append(frames)
            cameras.append(camera)
        first = worlds[0].tick()  # each camera's first frame comes with the first tick after listen
        sent = [first] + [worlds[0].tick() for _ in range(ticks - 1)]
        assert sent == list(range(first, first + ticks))
        for i, frames in enumerate(received):
            got = [frames.get(timeout=10.0) for _ in range(ticks)]
            assert got == sent, f"client {i}: frames {got}, ticks {sent}"
    finally:
        _stopped_cleanly(server)
