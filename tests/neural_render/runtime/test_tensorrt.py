"""TensorRT backend. TensorRT comes only from NVIDIA's package index, which build/CI machines cannot
reach, so the engine tests skip where it is missing; the error path runs anywhere (the engine cache it
shares with TensorRT-RTX: test_trt_shared.py)."""

import importlib.util

import pytest

from neural_render.runtime.trt_backend import import_tensorrt

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed")
def test_missing_tensorrt_names_the_extra():
    with pytest.raises(ImportError, match=r"\.\[tensorrt\]"):
        import_tensorrt()


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_engine_build_run_and_stale_cache(tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT is only on NVIDIA's package index (not reachable from CI)")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    import numpy as np

    from neural_render.model import build_generator
    from neural_render.runtime.trt_backend import TensorRTBackend

    model = build_generator("tiny").eval()
    be = TensorRTBackend(model, (64, 32), precision="fp16", directory=tmp_path)
    labels = np.zeros((32, 64), np.uint8)
    out = be.step(labels, None, False, {})
    assert out.shape == (32, 64, 3) and out.dtype == np.uint8
    be.engine_path.write_bytes(b"stale")  # corrupt cache entry -> rebuilt, not a crash
    be2 = TensorRTBackend(model, (64, 32), precision="fp16", directory=tmp_path)
    assert be2.step(labels, None, False, {}).shape == (32, 64, 3)
