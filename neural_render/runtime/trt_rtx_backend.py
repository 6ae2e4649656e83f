"""TensorRT for RTX backend (`pip install -e .[tensorrt-rtx]`, from PyPI): GeForce / RTX cards of compute
capability 7.5 to 12.x (RTX_CAPABILITIES). What it shares with datacenter TensorRT is in trt_shared.py.

What differs: the library is `tensorrt_rtx`; networks are strongly typed only (an fp16 engine is built
from the graph exported in fp16); an engine is built ahead of time for a named compute capability, with
no GPU needed (the builder compiles the kernels just in time on the first run), so the engine key
names the capability, not the GPU; and the timing cache is a no-op in TensorRT-RTX (its own
deprecation warning says so), so none is kept. `aot_engine` is that ahead-of-time build, which CI
runs on machines without a GPU.
"""

from __future__ import annotations

from pathlib import Path

import torch

from carla_bridge.core.files import cache_folder
from neural_render.model import Vid2VidGenerator
from neural_render.runtime.common import RTX_CAPABILITIES, log
from neural_render.runtime.onnx import cached_onnx
from neural_render.runtime.trt_shared import EngineCache, TensorRTRunner, cuda_device, engine_key, parse_onnx, serialize

RTX_GPU_NEEDED = "needs an RTX GPU (compute capability 7.5-12.0)"


def import_tensorrt_rtx():
    """The tensorrt_rtx module, imported here (optional) so that its absence is one error naming the extra."""
    try:
        import tensorrt_rtx as trt
    except ImportError as exc:
        raise ImportError("the tensorrt-rtx backend needs NVIDIA TensorRT for RTX (`pip install -e .[tensorrt-rtx]`); "
                          "use --backend torch or onnxruntime instead") from exc
    return trt


def rtx_target(capability: tuple[int, int]) -> str:
    """'SM86' for (8, 6): the name of TensorRT-RTX's ComputeCapability member, and the engine key's target."""
    if tuple(capability) not in RTX_CAPABILITIES:
        shown = ", ".join(f"{a}.{b}" for a, b in RTX_CAPABILITIES)
        raise ValueError(f"compute capability {capability[0]}.{capability[1]}: TensorRT-RTX builds for {shown}; "
                         "on other GPUs (Hopper 9.0, A100 8.0) use --backend tensorrt or torch")
    return f"SM{capability[0]}{capability[1]}"


def build_rtx_engine(trt, onnx_bytes: bytes, capability: tuple[int, int]) -> bytes:
    """A serialized engine for GPUs of ``capability``, built here without one."""
    builder, network, _parser = parse_onnx(trt, onnx_bytes)
    config = builder.create_builder_config()
    config.num_compute_capabilities = 1
    config.set_compute_capability(trt.ComputeCapability.__members__[rtx_target(capability)], 0)
    return serialize(trt, builder, network, config)


def rtx_engine_cache(trt, onnx_bytes: bytes, size: tuple[int, int], precision: str,
                     capability: tuple[int, int], directory: str | Path | None = None) -> EngineCache:
    key = engine_key(onnx_bytes, trt.__version__, rtx_target(capability), size, precision)
    return EngineCache(Path(directory or cache_folder()) / "trt-rtx" / f"{key[:24]}.engine")


def rtx_builder(trt, onnx_bytes: bytes, capability: tuple[int, int], precision: str):
    def build() -> bytes:
        log.info("tensorrt-rtx: building the engine for %s (%s); its kernels compile on the first frame",
                 rtx_target(capability), precision)
        return build_rtx_engine(trt, onnx_bytes, capability)
    return build


def aot_engine(trt, model: Vid2VidGenerator, size: tuple[int, int], precision: str,
               capability: tuple[int, int], directory: str | Path | None = None) -> tuple[EngineCache, bool]:
    """(cache entry, whether built now) for (model, size, precision, capability): the cached engine, else
    one built ahead of time, here, with no GPU. ``precision`` is fp32 or fp16, the graph's own."""
    onnx_bytes = cached_onnx(model, *size, precision, directory).read_bytes()
    cache = rtx_engine_cache(trt, onnx_bytes, size, precision, capability, directory)
    _, built = cache.get_or_build(rtx_builder(trt, onnx_bytes, capability, precision))
    return cache, built


class TensorRTRTXBackend(TensorRTRunner):
    name = "tensorrt-rtx"

    def __init__(self, model: Vid2VidGenerator, size: tuple[int, int], device: str | None = None,
                 precision: str = "fp16", cuda_graph: bool = False, directory: str | Path | None = None):
        trt = import_tensorrt_rtx()
        # The device was checked where it entered (Renderer, a tool's flags); precision is fp32 or fp16.
        self.device = cuda_device(device, self.name)
        self.device_name = torch.cuda.get_device_name(self.device)
        self.precision = precision
        capability = torch.cuda.get_device_capability(self.device)
        onnx_bytes = cached_onnx(model, *size, precision, directory).read_bytes()
        cache = rtx_engine_cache(trt, onnx_bytes, size, precision, capability, directory)
        frame_dtype = torch.float16 if precision == "fp16" else torch.float32
        self.start(trt, cache, rtx_builder(trt, onnx_bytes, capability, precision), model.config, size,
                   frame_dtype, cuda_graph)
