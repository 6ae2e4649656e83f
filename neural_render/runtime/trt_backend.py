"""TensorRT backend, written against NVIDIA's documented Python API (TensorRT 10 and 11).

Build: the exported ONNX -> `trt.OnnxParser` -> `builder.build_serialized_network`. Precision:
TensorRT 10 takes the fp32 graph plus `BuilderFlag.FP16` (weak typing); TensorRT 11 removed the
precision flags and only builds strongly typed networks, so there we export the graph in fp16 itself.
A timing cache file speeds up rebuilds; the serialized engine is cached under a key of ONNX sha256 +
TensorRT version + GPU name + shape + precision. A cache entry that does not deserialize (corrupt,
another TensorRT, another GPU) or whose I/O differs from the graph is deleted and rebuilt.
Run: torch CUDA tensors (DeviceHistory ping-pong buffers) bound by `set_tensor_address`, executed with
`execute_async_v3` on a dedicated (non-default) torch stream; optionally captured in CUDA graphs,
one per ping-pong parity since the bound addresses alternate.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from carla_bridge.core.files import cache_folder, write_atomic
from neural_render.model import Vid2VidGenerator
from neural_render.runtime.buffers import DeviceHistory
from neural_render.runtime.common import Stage, log
from neural_render.runtime.onnx import INPUT_NAMES, OUTPUT_NAMES, cached_onnx


def import_tensorrt():
    """The tensorrt module, imported here (optional, NVIDIA's index only) so that its absence is one
    error naming the extra to install."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ImportError("the tensorrt backend needs NVIDIA TensorRT >= 10 (`pip install -e .[tensorrt]` from "
                          "NVIDIA's package index); use --backend torch or onnxruntime instead") from exc
    return trt


def trt_major(trt) -> int:
    return int(str(trt.__version__).split(".")[0])


def engine_key(onnx_bytes: bytes, trt_version: str, gpu: str, size: tuple[int, int], precision: str) -> str:
    """Cache key: any change of graph, TensorRT, GPU, shape or precision gives another engine file."""
    h = hashlib.sha256(onnx_bytes)
    h.update(json.dumps([trt_version, gpu, list(size), precision]).encode())
    return h.hexdigest()


def build_engine(trt, onnx_bytes: bytes, precision: str, timing_cache: Path, workspace_gb: float = 4.0) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly_typed = trt_major(trt) >= 11
    flags = 0
    if strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)  # accepted (and implied) on 11
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse the ONNX graph: {errors}")
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
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT engine build failed (see the TensorRT log above)")
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, model: Vid2VidGenerator, size: tuple[int, int], device: str | None = None,
                 precision: str = "fp16", cuda_graph: bool = False, directory: str | Path | None = None):
        trt = import_tensorrt()
        # The device was checked where it entered (Renderer, a tool's flags); precision is fp32 or fp16.
        if not torch.cuda.is_available():  # device None: "auto" on a machine without a GPU
            raise RuntimeError("the tensorrt backend needs a CUDA GPU visible to torch")
        self.trt, self.precision = trt, precision
        self.device = torch.device(device if device and device.startswith("cuda") else "cuda")
        torch.cuda.set_device(self.device)
        self.device_name = torch.cuda.get_device_name(self.device)
        width, height = size
        # TensorRT 11 is strongly typed: the graph itself must carry fp16.
        graph_precision = precision if trt_major(trt) >= 11 else "fp32"
        onnx_path = cached_onnx(model, width, height, graph_precision, directory)
        onnx_bytes = onnx_path.read_bytes()
        root = Path(directory or cache_folder()) / "trt"
        key = engine_key(onnx_bytes, trt.__version__, self.device_name, size, precision)
        self.engine_path = root / f"{key[:24]}.engine"
        self.engine = self._load_or_build(onnx_bytes, root / f"timing-{trt.__version__}.cache")
        self.context = self.engine.create_execution_context()
        frame_dtype = torch.float16 if graph_precision == "fp16" else torch.float32
        self.history = DeviceHistory(model.config.k, width, height, self.device, frame_dtype)
        self.stream = torch.cuda.Stream(self.device)  # TensorRT warns on (and serialises) the default stream
        self.cuda_graph = cuda_graph
        self.graphs: dict[int, object] = {}

    @property
    def compiled(self) -> bool:
        return self.cuda_graph

    def _load_or_build(self, onnx_bytes: bytes, timing_cache: Path):
        trt = self.trt
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._runtime = runtime
        if self.engine_path.exists():
            try:
                engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            except Exception:  # some versions raise instead of returning None
                engine = None
            if engine is not None and self._io_matches(engine):
                return engine
            log.warning("tensorrt: cached engine %s is stale or corrupt; rebuilding", self.engine_path)
            self.engine_path.unlink(missing_ok=True)
        log.info("tensorrt: building engine (%s), this takes a minute once per model/GPU/shape", self.precision)
        data = build_engine(trt, onnx_bytes, self.precision, timing_cache)
        write_atomic(self.engine_path, data)
        engine = runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise RuntimeError("TensorRT could not deserialize the engine it just built")
        return engine

    def _io_matches(self, engine) -> bool:
        names = {engine.get_tensor_name(i) for i in range(engine.num_io_tensors)}
        return names == set(INPUT_NAMES) | set(OUTPUT_NAMES)

    def reset(self) -> None:
        self.history.reset()

    def _bind(self) -> None:
        for name, tensor in zip(INPUT_NAMES + OUTPUT_NAMES, self.history.inputs() + self.history.outputs()):
            self.context.set_tensor_address(name, tensor.data_ptr())

    def _execute(self) -> None:
        parity = self.history.cur
        if not self.cuda_graph:
            self._bind()
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            return
        if parity not in self.graphs:  # run once (lazy allocations), then capture this parity's graph
            self._bind()
            self.context.execute_async_v3(self.stream.cuda_stream)
            self.stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self.stream):
                self.context.execute_async_v3(self.stream.cuda_stream)
            self.graphs[parity] = graph
        self.graphs[parity].replay()

    def step(self, labels: np.ndarray, flow: np.ndarray | None, has_history: bool,
             timings: dict[str, tuple[int, int]]) -> np.ndarray:
        h, sync = self.history, self.stream.synchronize
        with torch.cuda.stream(self.stream):
            with Stage(timings, "upload", sync):
                h.upload(labels, flow, has_history)
            with Stage(timings, "inference", sync):
                self._execute()
                h.swap()
            with Stage(timings, "download"):
                return h.download()
