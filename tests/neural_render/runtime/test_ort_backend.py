"""neural_render.runtime.ort_backend: the ONNX Runtime backend without a usable GPU."""

import pytest
import torch

from neural_render.runtime.ort_backend import OrtBackend
from support.runtime import random_frame, tiny_generator_with_flow

W, H = 64, 32


def test_ort_cuda_request_falls_back_to_cpu(tmp_path, monkeypatch, caplog):
    """onnxruntime-gpu without a usable GPU: CPU EP with a logged note, no crash."""
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    model = tiny_generator_with_flow()
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    with caplog.at_level("WARNING", logger="neural_render.runtime"):
        be = OrtBackend(model, (W, H), device="cuda")
    assert be.providers == ["CPUExecutionProvider"] and be.device_name == "cpu"
    assert be.binding is None
    timings = {}
    assert be.step(random_frame(0, (W, H)).labels, None, False, timings).shape == (H, W, 3)
