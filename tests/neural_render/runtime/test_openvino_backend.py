"""neural_render.runtime.openvino_backend: OpenVINO on the CPU against ONNX Runtime and torch, with the
shipped model at a tiny size, history carried across frames, and the precision it is allowed to run."""

import numpy as np
import pytest

from neural_render.checkpoint import load_generator
from neural_render.runtime.ort_backend import OrtBackend
from neural_render.runtime.torch_backend import TorchBackend
from support.runtime import random_frame

ov = pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install -e .[openvino])")

from neural_render.runtime.openvino_backend import OpenVINOBackend, cpu_precisions  # noqa: E402

SIZE = (64, 32)


@pytest.fixture(scope="module")
def shipped():
    return load_generator("models/cpu.safetensors")


def run(backend, frames):
    """The frames a backend renders from a drive: history from the second frame, a cut at the fourth."""
    out = []
    for i, frame in enumerate(frames):
        if i == 3:
            backend.reset()
        out.append(backend.step(frame.labels, frame.flow, i not in (0, 3), {}).astype(np.int16))
    return out


def test_openvino_renders_like_onnxruntime_and_torch_across_frames(shipped):
    frames = [random_frame(i, SIZE, flow=i % 2 == 1) for i in range(5)]
    got = run(OpenVINOBackend(shipped, SIZE), frames)
    for reference in (OrtBackend(shipped, SIZE, "cpu"), TorchBackend(shipped, SIZE, "cpu", channels_last=False)):
        want = run(reference, frames)
        for g, w in zip(got, want):
            assert np.abs(g - w).max() <= 1  # f32 in all three: a rounding step of the uint8 image at most
    assert not np.array_equal(got[1], run(OpenVINOBackend(shipped, SIZE), [frames[1]])[0])  # history is used


def test_fp32_is_forced_not_left_to_the_cpu_plugin(shipped):
    be = OpenVINOBackend(shipped, SIZE)
    assert be.precision == "fp32"
    assert be.compiled_model.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32


@pytest.mark.skipif("bf16" in cpu_precisions(ov.Core()), reason="this CPU runs bf16")
def test_bf16_on_a_cpu_without_it_is_a_clear_error(shipped):
    with pytest.raises(ValueError, match=r"precision 'bf16'.*pass --precision fp32"):
        OpenVINOBackend(shipped, SIZE, precision="bf16")


@pytest.mark.skipif("bf16" not in cpu_precisions(ov.Core()), reason="needs a CPU with bf16 (AVX512_BF16 or AMX)")
def test_bf16_runs_where_the_cpu_has_it(shipped):
    frame = random_frame(0, SIZE)
    bf16 = OpenVINOBackend(shipped, SIZE, precision="bf16")
    assert bf16.compiled_model.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16
    fp32 = OpenVINOBackend(shipped, SIZE).step(frame.labels, frame.flow, False, {})
    diff = np.abs(bf16.step(frame.labels, frame.flow, False, {}).astype(int) - fp32.astype(int))
    assert diff.mean() < 8  # the same picture: bf16 moves single pixels far (0.70 of [-1, 1] on a probe), not all
