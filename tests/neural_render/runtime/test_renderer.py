"""Renderer over the torch and onnxruntime backends (CPU): output, history carry/reset, flicker mode,
backend agreement, timings, and a clear ValueError for every kind of bad frame."""

import types

import numpy as np
import pytest
import torch

from support.runtime import tiny_generator_with_flow

from neural_render.runtime import Renderer, available_backends, resolve_backend

W, H = 64, 32


def frame(seed, cut=False, flow=True):
    rng = np.random.default_rng(seed)
    return types.SimpleNamespace(labels=rng.integers(0, 29, (H, W), dtype=np.uint8),
                                 flow=rng.standard_normal((H, W, 2)).astype(np.float32) if flow else None, cut=cut)


@pytest.fixture(scope="module")
def model():
    return tiny_generator_with_flow()


@pytest.fixture(scope="module", params=["torch", "onnxruntime"])
def renderer(request, model, tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("NEURAL_DRIVE_CACHE", str(tmp_path_factory.mktemp("cache")))
    return Renderer(model, backend=request.param, device="cpu", size=(W, H))


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_output_and_attributes(renderer):
    img = renderer.render(frame(0, cut=True))
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    assert renderer.size == (W, H) and renderer.model_name == "tiny" and renderer.precision == "fp32"
    assert renderer.backend_name in ("torch", "onnxruntime") and renderer.device_name == "cpu"
    assert set(renderer.last_timings) == {"preprocess", "upload", "inference", "download"}
    for start, end in renderer.last_timings.values():
        assert 0 < start <= end


def test_history_carry_and_cut(renderer):
    renderer.reset()
    first = renderer.render(frame(1))
    second = renderer.render(frame(2))
    fresh = renderer.render(frame(2, cut=True))  # same labels, history dropped
    assert not np.array_equal(second, fresh)
    renderer.reset()
    np.testing.assert_array_equal(renderer.render(frame(1)), first)  # reset = brand new renderer


def test_history_disabled_is_frame_by_frame(renderer):
    renderer.reset()
    alone = renderer.render(frame(5))
    renderer.render(frame(6))
    renderer.history_enabled = False
    renderer.render(frame(7))
    np.testing.assert_array_equal(renderer.render(frame(5)), alone)
    renderer.history_enabled = True


def test_backends_agree(model, tmp_path, monkeypatch):
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    a = Renderer(model, backend="torch", device="cpu", size=(W, H))
    b = Renderer(model, backend="onnxruntime", device="cpu", size=(W, H))
    for i in range(4):
        f = frame(10 + i, cut=i == 0, flow=i != 2)
        diff = np.abs(a.render(f).astype(int) - b.render(f).astype(int)).max()
        assert diff <= 1, (i, diff)


@pytest.mark.parametrize("bad, match", [
    (dict(labels=np.zeros((H, W), np.int64)), "dtype"),
    (dict(labels=np.zeros((H, W, 1), np.uint8)), "shape"),
    (dict(labels=np.zeros((H, W + 8), np.uint8)), "size mismatch"),
    (dict(labels=np.full((H, W), 29, np.uint8)), "outside 0..28"),
    (dict(labels=[[0]]), "numpy array"),
    (dict(flow=np.full((H, W, 2), np.nan, np.float32)), "NaN"),
    (dict(flow=np.zeros((H, W, 2), np.float64)), "float32"),
    (dict(flow=np.zeros((2, H, W), np.float32)), "flow shape"),
])
def test_bad_input(renderer, bad, match):
    f = frame(0)
    for key, value in bad.items():
        setattr(f, key, value)
    with pytest.raises(ValueError, match=match):
        renderer.render(f)
    assert renderer.render(frame(0)).shape == (H, W, 3)  # still usable afterwards


def test_constructor_errors(model, tmp_path):
    from neural_render.checkpoint import CheckpointError, save_generator
    with pytest.raises(ValueError, match="multiples"):
        Renderer(model, backend="torch", size=(60, 32))
    with pytest.raises(ValueError, match="backend"):
        Renderer(model, backend="vulkan", size=(W, H))
    with pytest.raises(ValueError, match="precision"):
        Renderer(model, backend="torch", precision="int8", size=(W, H))
    path = save_generator(model, tmp_path / "m.safetensors")
    r = Renderer(str(path), backend="torch", device="cpu", size=(W, H))
    assert r.render(frame(0)).shape == (H, W, 3)
    with pytest.raises(CheckpointError):
        Renderer(str(path), backend="torch", size=(W, H), preset="cpu")
    (tmp_path / "trunc.safetensors").write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError):
        Renderer(tmp_path / "trunc.safetensors", backend="torch", size=(W, H))


def test_model_not_modified_by_backend(model):
    Renderer(model, backend="torch", device="cpu", precision="bf16", size=(W, H))
    assert next(model.parameters()).dtype == torch.float32


def test_backend_selection():
    cpu = available_backends("cpu")
    assert "torch" in cpu and "onnxruntime" in cpu and "tensorrt" not in cpu
    if not torch.cuda.is_available():
        assert resolve_backend("auto") == ("onnxruntime", "cpu")
        assert available_backends("cuda") == []
    with pytest.raises(ValueError):
        available_backends("tpu")


def test_ort_cuda_request_falls_back_to_cpu(model, tmp_path, monkeypatch, caplog):
    """onnxruntime-gpu without a usable GPU: CPU EP with a logged note, no crash."""
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    from neural_render.runtime.ort_backend import OrtBackend
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    with caplog.at_level("WARNING", logger="neural_render.runtime"):
        be = OrtBackend(model, (W, H), device="cuda")
    assert be.providers == ["CPUExecutionProvider"] and be.device_name == "cpu"
    assert be.binding is None
    timings = {}
    assert be.step(frame(0).labels, None, False, timings).shape == (H, W, 3)
