"""The render service end to end: a real Triton server (python -m neural_render.serve) on 127.0.0.1 and
RemoteRenderer clients. Concurrent streams render what local Renderers render, a cut resets only its
own stream, a bad frame is refused in the Renderer's words, and a server killed mid-stream is a clear
ConnectionError (not a hang) after which a restarted server is noticed and the stream starts fresh."""

import threading
import time
import types

import numpy as np
import pytest

from neural_render.checkpoint import DEFAULT_MODEL_PATH
from neural_render.runtime import Renderer
from neural_render.runtime.remote import RemoteRenderer
from neural_render.serve.server import pytriton_problem
from support.runtime import random_frame
from support.serve import ServerProcess, assert_frames_match

# PyTriton needs numpy < 2, the suite runs on numpy 2: these run in the service's own venv (README,
# Serve many simulators), where the skip reason below says what to install.
pytestmark = [pytest.mark.slow,  # a server start is ~8 s on the 2-core box
              pytest.mark.skipif(pytriton_problem() is not None, reason=f"{pytriton_problem()}")]
SIZE = (64, 32)
CLIENTS, FRAMES = 4, 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(DEFAULT_MODEL_PATH, tmp_path_factory.mktemp("serve") / "server.log")
    yield process
    process.stop()


def stream_frames(index: int, count: int = FRAMES, cut_at: int | None = None):
    return [random_frame(1000 * index + i, SIZE, cut=(i == cut_at), flow=(i % 3 != 0)) for i in range(count)]


def local_images(frames):
    with Renderer(DEFAULT_MODEL_PATH, backend="torch", device="cpu", size=SIZE) as renderer:
        return [renderer.render(frame) for frame in frames]


def test_concurrent_streams_render_what_local_renderers_render(server):
    frames = [stream_frames(i, cut_at=12 if i == 2 else None) for i in range(CLIENTS)]
    served: list[list[np.ndarray]] = [[] for _ in range(CLIENTS)]
    batch_sizes: list[int] = []
    errors: list[BaseException] = []

    def client(index: int) -> None:
        try:
            with RemoteRenderer(server.url, SIZE, stream=f"camera-{index}") as remote:
                for frame in frames[index]:
                    served[index].append(remote.render(frame))
                    batch_sizes.append(remote.last_batch_size)
        except BaseException as error:  # reported below: an assert in a thread would be lost
            errors.append(error)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and not any(thread.is_alive() for thread in threads), errors
    for index in range(CLIENTS):
        assert_frames_match(served[index], local_images(frames[index]), f"stream {index}")
    assert max(batch_sizes) <= CLIENTS


def test_a_cut_resets_only_its_own_stream(server):
    frames = stream_frames(7, count=5)
    cut_frames = [types.SimpleNamespace(labels=f.labels, flow=f.flow, cut=(i == 3)) for i, f in enumerate(frames)]
    with RemoteRenderer(server.url, SIZE) as plain, RemoteRenderer(server.url, SIZE) as cut:
        images = [(plain.render(a), cut.render(b)) for a, b in zip(frames, cut_frames)]
    assert_frames_match([pair[0] for pair in images], local_images(frames), "the stream without a cut")
    assert_frames_match([pair[1] for pair in images], local_images(cut_frames), "the stream with a cut")
    assert not np.array_equal(images[3][0], images[3][1])


@pytest.mark.parametrize("spoil", ["shape", "label id"])
def test_a_bad_frame_is_refused_in_the_renderer_s_words(server, spoil):
    frame = random_frame(5, SIZE)
    if spoil == "shape":
        frame.labels = np.zeros((SIZE[1], SIZE[0] + 8), np.uint8)
    else:
        frame.labels[3, 4] = 29
    with pytest.raises(ValueError) as local:
        local_images([frame])
    with RemoteRenderer(server.url, SIZE) as remote, pytest.raises(ValueError) as served:
        remote.render(frame)
    assert str(served.value) == str(local.value)


def test_the_server_checks_what_a_client_did_not(server):
    """A client that lets label id 40 through (num_classes=256) gets the server's refusal, in the
    Renderer's words, and its next good frame renders."""
    frame = random_frame(6, SIZE)
    frame.labels[0, 0] = 40
    with pytest.raises(ValueError) as local:
        local_images([frame])
    with RemoteRenderer(server.url, SIZE, num_classes=256) as remote:
        with pytest.raises(ValueError) as served:
            remote.render(frame)
        assert remote.render(random_frame(7, SIZE)).shape == (SIZE[1], SIZE[0], 3)
    assert str(served.value) == str(local.value)


def test_a_killed_server_is_a_clear_error_and_a_restart_is_noticed(tmp_path):
    log = tmp_path / "server.log"
    first = ServerProcess(DEFAULT_MODEL_PATH, log)
    frames = stream_frames(9, count=4)
    remote = RemoteRenderer(first.url, SIZE, stream="camera", timeout_s=10.0)
    try:
        remote.render(frames[0])
        remote.render(frames[1])
        first.kill()
        start = time.monotonic()
        with pytest.raises(ConnectionError, match=f"render server {first.url} did not answer"):
            remote.render(frames[2])
        assert time.monotonic() - start < 10.0  # an error, not a hang until the time-out
        second = ServerProcess(DEFAULT_MODEL_PATH, log, first.ports)
        try:
            image = remote.render(frames[3])
        finally:
            second.stop()
    finally:
        remote.close()
        first.stop()
    assert remote.server_restarts == 1
    fresh = types.SimpleNamespace(labels=frames[3].labels, flow=frames[3].flow, cut=True)
    assert np.array_equal(image, local_images([fresh])[0])  # the stream started again with a cut
