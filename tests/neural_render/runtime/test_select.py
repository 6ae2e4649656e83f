"""neural_render.runtime.select: which backends run here, what `auto` picks, and device checks."""

import pytest
import torch

from neural_render.runtime import available_backends, resolve_backend, unavailable_reason
from neural_render.runtime.select import cuda_device_problem


def test_backend_selection():
    cpu = available_backends("cpu")
    assert "torch" in cpu and "onnxruntime" in cpu and "tensorrt" not in cpu
    if not torch.cuda.is_available():
        assert resolve_backend("auto") == ("openvino" if "openvino" in cpu else "onnxruntime", "cpu")
        assert available_backends("cuda") == []
    with pytest.raises(ValueError):
        available_backends("tpu")


def test_a_malformed_cuda_device_is_named_not_an_int_error():
    assert "expected cuda or cuda:N" in cuda_device_problem("cuda:x")


def test_why_a_backend_is_unavailable_is_said_in_a_few_words():
    """What `--profile --backend all` prints beside a backend it could not compare."""
    assert unavailable_reason("no_such_backend_package", "cpu") == "not installed"
    assert unavailable_reason("onnxruntime", "cuda") == "needs a CUDA GPU"  # installed, and no GPU here


@pytest.fixture
def fake_gpu(monkeypatch):
    """A machine with one CUDA GPU of a chosen compute capability and every backend's package installed."""
    from neural_render.runtime import select

    def set_capability(capability, installed=("tensorrt", "tensorrt_rtx", "openvino", "onnxruntime")):
        monkeypatch.setattr(select, "_cuda", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(select, "_has", lambda module: module in installed)
    return set_capability


@pytest.mark.parametrize("capability", [(7, 5), (8, 6), (8, 9), (12, 0)])
def test_auto_picks_tensorrt_rtx_on_an_rtx_card(fake_gpu, capability):
    fake_gpu(capability)
    assert resolve_backend("auto") == ("tensorrt-rtx", "cuda")
    assert "tensorrt-rtx" in available_backends("cuda")


@pytest.mark.parametrize("capability", [(9, 0), (8, 0), (10, 0)])
def test_auto_keeps_datacenter_tensorrt_where_rtx_does_not_build(fake_gpu, capability):
    fake_gpu(capability)
    assert resolve_backend("auto") == ("tensorrt", "cuda")
    assert "tensorrt-rtx" not in available_backends("cuda")
    assert unavailable_reason("tensorrt-rtx", "cuda") == "needs an RTX GPU (compute capability 7.5-12.0)"


def test_auto_on_an_rtx_card_without_either_tensorrt_runs_torch(fake_gpu):
    fake_gpu((8, 9), installed=("onnxruntime",))
    assert resolve_backend("auto") == ("torch", "cuda")


def test_auto_on_the_cpu_prefers_openvino_when_installed(monkeypatch):
    from neural_render.runtime import select

    monkeypatch.setattr(select, "_has", lambda module: module in ("openvino", "onnxruntime"))
    assert resolve_backend("auto", "cpu") == ("openvino", "cpu")
    monkeypatch.setattr(select, "_has", lambda module: module == "onnxruntime")
    assert resolve_backend("auto", "cpu") == ("onnxruntime", "cpu")


def test_openvino_runs_on_the_cpu_and_tensorrt_rtx_on_a_gpu_only():
    from neural_render.runtime.select import create_backend

    with pytest.raises(ValueError, match="'tensorrt-rtx' runs on a CUDA GPU only"):
        create_backend("tensorrt-rtx", None, (64, 32), "cpu", "fp32")
    assert resolve_backend("openvino") == ("openvino", "cpu")


def test_auto_asks_the_card_it_will_run_on_not_cuda_0(fake_gpu, monkeypatch):
    """A datacenter GPU as cuda:0 beside an RTX card as cuda:1: each device gets its own TensorRT."""
    fake_gpu(None)
    capabilities = {0: (9, 0), 1: (8, 9)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capabilities[device])
    assert resolve_backend("auto", "cuda:1") == ("tensorrt-rtx", "cuda:1")
    assert resolve_backend("auto", "cuda:0") == ("tensorrt", "cuda:0")
    assert resolve_backend("auto") == ("tensorrt", "cuda")
    assert "tensorrt-rtx" in available_backends("cuda:1") and "tensorrt-rtx" not in available_backends()
