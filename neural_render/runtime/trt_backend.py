"""Datacenter TensorRT backend (TensorRT 10 and 11: H100-class GPUs, which TensorRT-RTX does not serve).
What it shares with the TensorRT-RTX backend (engine cache, run, CUDA graphs) is in trt_shared.py; here:
the import, TensorRT 10's weak typing (an fp32 graph plus `BuilderFlag.FP16`) against 11's strong typing
(the graph exported in fp16), the workspace limit and the timing cache, kept per TensorRT version.
"""

from __future__ import annotations

from pathlib import Path

import torch

from carla_bridge.core.files import cache_folder
from neural_render.model import Vid2VidGenerator
from neural_render.runtime.common import log
from neural_render.runtime.onnx import cached_onnx
from neural_render.runtime.trt_shared import EngineCache, TensorRTRunner, cuda_device, engine_key, parse_onnx, serialize


def import_tensorrt():
    """The tensorrt module, imported here (optional, NVIDIA's index only) so that its absence is one
    error naming the extra to install."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ImportError("the tensorrt backend needs NVIDIA TensorRT >= 10 (`pip install -e .[tensorrt]` from "
                          "NVIDIA's package index); use --backend tensorrt-rtx on an RTX card, or torch or "
                          "onnxruntime") from exc
    return trt


def trt_major(trt) -> int:
    return int(str(trt.__version__).split(".")[0])


def build_engine(trt, onnx_bytes: bytes, precision: str, timing_cache: Path, workspace_gb: float = 4.0) -> bytes:
    strongly_typed = trt_major(trt) >= 11
    builder, network, _parser = parse_onnx(trt, onnx_bytes, strongly_typed)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision == "fp16" and not strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)  # TensorRT 10: weak typing, fp32 graph
    cache_bytes = timing_cache.read_bytes() if timing_cache.exists() else b""
    cache = config.create_timing_cache(cache_bytes)
    if not config.set_timing_cache(cache, ignore_mismatch=False):  # a cache from another GPU/version
        log.info("tensorrt: timing cache %s rejected; starting a fresh one", timing_cache)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    data = serialize(trt, builder, network, config)
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    return data


class TensorRTBackend(TensorRTRunner):
    name = "tensorrt"

    def __init__(self, model: Vid2VidGenerator, size: tuple[int, int], device: str | None = None,
                 precision: str = "fp16", cuda_graph: bool = False, directory: str | Path | None = None):
        trt = import_tensorrt()
        # The device was checked where it entered (Renderer, a tool's flags); precision is fp32 or fp16.
        self.device = cuda_device(device, self.name)
        self.device_name = torch.cuda.get_device_name(self.device)
        self.precision = precision
        # TensorRT 11 is strongly typed: the graph itself must carry fp16.
        graph_precision = precision if trt_major(trt) >= 11 else "fp32"
        onnx_bytes = cached_onnx(model, *size, graph_precision, directory).read_bytes()
        root = Path(directory or cache_folder()) / "trt"
        key = engine_key(onnx_bytes, trt.__version__, self.device_name, size, precision)
        timing_cache = root / f"timing-{trt.__version__}.cache"

        def build() -> bytes:
            log.info("tensorrt: building engine (%s), this takes a minute once per model/GPU/shape", precision)
            return build_engine(trt, onnx_bytes, precision, timing_cache)
        frame_dtype = torch.float16 if graph_precision == "fp16" else torch.float32
        self.start(trt, EngineCache(root / f"{key[:24]}.engine"), build, model.config, size, frame_dtype,
                   cuda_graph)
