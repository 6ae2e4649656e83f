"""neural_render.runtime.select: which backends run here, what `auto` picks, and device checks."""

import pytest
import torch

from neural_render.runtime import available_backends, resolve_backend, unavailable_reason
from neural_render.runtime.select import cuda_device_problem


def test_backend_selection():
    cpu = available_backends("cpu")
    assert "torch" in cpu and "onnxruntime" in cpu and "tensorrt" not in cpu
    if not torch.cuda.is_available():
        assert resolve_backend("auto") == ("onnxruntime", "cpu")
        assert available_backends("cuda") == []
    with pytest.raises(ValueError):
        available_backends("tpu")


def test_a_malformed_cuda_device_is_named_not_an_int_error():
    assert "expected cuda or cuda:N" in cuda_device_problem("cuda:x")


def test_why_a_backend_is_unavailable_is_said_in_a_few_words():
    """What `--profile --backend all` prints beside a backend it could not compare."""
    assert unavailable_reason("no_such_backend_package", "cpu") == "not installed"
    assert unavailable_reason("onnxruntime", "cuda") == "needs a CUDA GPU"  # installed, and no GPU here
