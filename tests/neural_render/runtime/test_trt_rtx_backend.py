"""neural_render.runtime.trt_rtx_backend with the real TensorRT-RTX library (`.[tensorrt-rtx]`, in the
test extra). Without a GPU the library parses our graph and builds an engine ahead of time for a named
compute capability (the kernels compile just in time on the GPU), so CI builds the shipped model's engine
on every run; deserializing and running it need an RTX GPU, and those tests skip without one."""

import logging

import numpy as np
import pytest
import torch

from neural_render.checkpoint import load_generator
from neural_render.model import build_generator
from neural_render.runtime.common import RTX_CAPABILITIES
from neural_render.runtime.onnx import cached_onnx
from support.runtime import random_frame

trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is not installed (pip install -e .[tensorrt-rtx])")

from neural_render.runtime.trt_rtx_backend import (  # noqa: E402  (needs tensorrt_rtx)
    RTX_GPU_NEEDED, TensorRTRTXBackend, aot_engine, build_rtx_engine, rtx_target)
from neural_render.runtime.trt_shared import parse_onnx  # noqa: E402

SHIPPED = "models/cpu.safetensors"
ADA = (8, 9)
HAS_RTX_GPU = torch.cuda.is_available() and torch.cuda.get_device_capability() in RTX_CAPABILITIES


@pytest.fixture(scope="module")
def shipped():
    return load_generator(SHIPPED)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache folder for the module: the shipped model's 256x128 graph is exported once."""
    return tmp_path_factory.mktemp("rtx-cache")


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_every_op_of_the_shipped_graph_parses(shipped, cache, precision):
    onnx_bytes = cached_onnx(shipped, 256, 128, precision, cache).read_bytes()
    _, network, _parser = parse_onnx(trt, onnx_bytes)
    kinds = {network.get_layer(i).type for i in range(network.num_layers)}
    assert trt.LayerType.GRID_SAMPLE in kinds and trt.LayerType.CONVOLUTION in kinds
    outputs = {network.get_output(i).name: network.get_output(i).dtype for i in range(network.num_outputs)}
    assert outputs["image_u8"] == trt.DataType.UINT8 and outputs["next_labels"] == trt.DataType.UINT8


def test_the_shipped_engine_is_built_ahead_of_time_cached_and_rebuilt_when_corrupt(shipped, cache, caplog, capsys):
    entry, built = aot_engine(trt, shipped, (256, 128), "fp16", ADA, cache)
    assert built and entry.path.stat().st_size > 1_000_000  # 6.7 MB measured for an fp16 engine
    first = entry.path.read_bytes()
    with capsys.disabled():  # so that every CI log shows the real library building an engine
        print(f"\nTensorRT-RTX {trt.__version__} built the shipped model's engine ahead of time: "
              f"{rtx_target(ADA)}, 256x128 fp16, {len(first) / 1e6:.1f} MB")
    again, built = aot_engine(trt, shipped, (256, 128), "fp16", ADA, cache)
    assert not built and again.path == entry.path and again.path.read_bytes() == first

    entry.path.write_bytes(first[:-1000])  # a truncated copy: found by its digest, rebuilt
    with caplog.at_level(logging.WARNING, logger="neural_render.runtime"):
        again, built = aot_engine(trt, shipped, (256, 128), "fp16", ADA, cache)
    assert built and "corrupt" in caplog.text and again.load() is not None


def test_a_changed_graph_or_shape_builds_another_engine(tmp_path):
    model = build_generator("tiny").eval()
    entry, built = aot_engine(trt, model, (64, 32), "fp32", ADA, tmp_path)
    other_shape, built_shape = aot_engine(trt, model, (128, 64), "fp32", ADA, tmp_path)
    with torch.no_grad():
        model.out_conv.bias.add_(0.01)  # another graph at the same size
    other_graph, built_graph = aot_engine(trt, model, (64, 32), "fp32", ADA, tmp_path)
    assert built and built_shape and built_graph
    assert len({entry.path, other_shape.path, other_graph.path}) == 3
    assert all(e.load() is not None for e in (entry, other_shape, other_graph))  # none replaced another


@pytest.mark.slow
def test_the_gpu_presets_engine_builds_at_1024x512(tmp_path):
    """3.5 minutes on the 2-core box, nearly all of it torch's ONNX export at this size (the build: 0.9 s)."""
    torch.manual_seed(0)
    cache, built = aot_engine(trt, build_generator("gpu").eval(), (1024, 512), "fp16", (8, 6), tmp_path)
    assert built and cache.load() is not None


def test_a_gpu_rtx_does_not_serve_is_named():
    assert rtx_target((12, 0)) == "SM120"
    with pytest.raises(ValueError, match=r"9\.0.*--backend tensorrt"):
        rtx_target((9, 0))


def test_a_graph_rtx_cannot_parse_names_the_node():
    with pytest.raises(RuntimeError, match="could not parse"):
        build_rtx_engine(trt, b"not an onnx graph", ADA)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_RTX_GPU, reason=RTX_GPU_NEEDED)
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_rtx_renders_like_torch(shipped, tmp_path, cuda_graph):
    from neural_render.runtime.torch_backend import TorchBackend

    be = TensorRTRTXBackend(shipped, (256, 128), "cuda", "fp32", cuda_graph=cuda_graph, directory=tmp_path)
    ref = TorchBackend(shipped, (256, 128), "cuda", "fp32")
    for i in range(3):
        frame = random_frame(i, (256, 128))
        got, want = be.step(frame.labels, frame.flow, i > 0, {}), ref.step(frame.labels, frame.flow, i > 0, {})
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 2
