"""neural_render.serve.streams and the infer function of server.py, without a Triton server: a batch of
streams renders what one local Renderer per stream renders, a stream's cut or idle drop touches only
that stream, and a bad request fails its own answer only."""

import numpy as np
import pytest

from neural_render.runtime import Renderer
from neural_render.serve.server import RenderFunction
from neural_render.serve.streams import BatchedStreams, StreamFrame
from support.runtime import random_frame, tiny_generator_with_flow
from support.serve import assert_frames_match

W, H = 64, 32
STREAMS = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def model():
    return tiny_generator_with_flow()


def frames_of(stream_index: int, count: int, cut_at: int | None = None, size=(W, H)):
    """Distinct frames per stream; every other one without flow, so both flow paths are in each batch."""
    return [random_frame(100 * stream_index + i, size, cut=(i == cut_at), flow=(i + stream_index) % 2 == 0)
            for i in range(count)]


def local_images(model, frames, size=(W, H)):
    with Renderer(model, backend="torch", device="cpu", size=size) as renderer:
        return [renderer.render(frame) for frame in frames]


def as_request(stream: str, frame) -> StreamFrame:
    return StreamFrame(stream, frame.labels, frame.flow, bool(frame.cut))


def test_a_batch_of_streams_renders_what_local_renderers_render(model):
    streams = BatchedStreams(model, "cpu", "fp32", idle_timeout_s=60.0)
    per_stream = [frames_of(i, 5, cut_at=3 if i == 1 else None) for i in range(len(STREAMS))]
    served = [[] for _ in STREAMS]
    for step in range(5):
        images, compute_s = streams.render([as_request(name, per_stream[i][step]) for i, name in enumerate(STREAMS)])
        assert compute_s > 0
        for i, image in enumerate(images):
            served[i].append(image)
    for i in range(len(STREAMS)):
        # not bit-exact: a batch of 4 runs other kernels than a batch of 1 (support/serve.py says how close)
        assert_frames_match(served[i], local_images(model, per_stream[i]), f"stream {STREAMS[i]}")


def test_a_cut_resets_only_its_own_stream(model):
    streams = BatchedStreams(model, "cpu", "fp32", idle_timeout_s=60.0)
    same = frames_of(0, 4)
    for step, frame in enumerate(same):
        cut_a = step == 2
        images, _ = streams.render([StreamFrame("a", frame.labels, frame.flow, cut_a),
                                    StreamFrame("b", frame.labels, frame.flow, False)])
    with_cut = local_images(model, [type(f)(labels=f.labels, flow=f.flow, cut=(i == 2)) for i, f in enumerate(same)])
    without = local_images(model, same)
    assert_frames_match(list(images), [with_cut[-1], without[-1]], "streams a (cut) and b")
    assert not np.array_equal(images[0], images[1])  # the cut changed stream a's history, not b's


def test_two_frames_of_one_stream_in_a_batch_run_in_order(model):
    streams = BatchedStreams(model, "cpu", "fp32", idle_timeout_s=60.0)
    frames = frames_of(0, 3)
    images, _ = streams.render([as_request("a", frame) for frame in frames])
    assert all(np.array_equal(got, want) for got, want in zip(images, local_images(model, frames)))


def test_an_idle_stream_is_dropped_and_comes_back_with_a_cut(model):
    streams = BatchedStreams(model, "cpu", "fp32", idle_timeout_s=5.0)
    frames = frames_of(0, 3)
    streams.render([as_request("a", frames[0]), as_request("b", frames[0])])
    streams.streams["a"].last_seen -= 10.0  # idle for longer than the timeout
    images, _ = streams.render([as_request("b", frames[1])])
    assert set(streams.streams) == {"b"}  # dropped: memory is bounded by the streams that render
    images, _ = streams.render([as_request("a", frames[2])])
    assert np.array_equal(images[0], local_images(model, [frames[2]])[0])  # fresh, as after a cut


def test_streams_of_other_sizes_keep_their_own_history(model):
    streams = BatchedStreams(model, "cpu", "fp32", idle_timeout_s=60.0)
    small, large = frames_of(0, 2), frames_of(1, 2, size=(2 * W, H))
    for step in range(2):
        images, _ = streams.render([as_request("small", small[step]), as_request("large", large[step])])
    assert np.array_equal(images[0], local_images(model, small)[-1])
    assert np.array_equal(images[1], local_images(model, large, size=(2 * W, H))[-1])


def request(stream: str, frame) -> dict:
    """A Triton request as PyTriton hands it to the infer function: arrays with a batch dimension of 1."""
    out = {"stream": np.array([[stream.encode()]], dtype=object), "labels": frame.labels[None],
           "cut": np.array([[bool(frame.cut)]])}
    if frame.flow is not None:
        out["flow"] = frame.flow[None]
    return out


def test_a_bad_request_fails_its_own_answer_with_the_renderer_s_words(model):
    function = RenderFunction(model, "cpu", "fp32", idle_timeout_s=60.0)
    good = random_frame(1, (W, H))
    bad = random_frame(2, (W, H))
    bad.labels[0, 0] = 40
    with pytest.raises(ValueError) as local:
        Renderer(model, backend="torch", device="cpu", size=(W, H)).render(bad)
    answers = function([request("good", good), request("bad", bad)])
    assert answers[1]["error"][0, 0].decode() == str(local.value)
    assert answers[0]["error"][0, 0] == b"" and answers[0]["batch_size"][0, 0] == 1
    assert np.array_equal(answers[0]["image"][0], local_images(model, [good])[0])
    assert answers[0]["server_id"][0, 0] == answers[1]["server_id"][0, 0] == function.server_id.encode()


def test_a_size_the_model_cannot_take_is_refused(model):
    function = RenderFunction(model, "cpu", "fp32", idle_timeout_s=60.0)
    answer = function([request("odd", random_frame(3, (W + 3, H)))])[0]
    assert "multiples of" in answer["error"][0, 0].decode()
