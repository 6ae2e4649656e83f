"""What the two TensorRT backends share (trt_backend: datacenter TensorRT 10/11; trt_rtx_backend:
TensorRT for RTX), written against NVIDIA's documented Python API, which both libraries expose alike.

Build: the exported ONNX -> `OnnxParser` -> `build_serialized_network`. Both libraries build strongly
typed networks only (TensorRT 11 dropped the precision flags, TensorRT-RTX never had them; TensorRT 10
takes an fp32 graph plus `BuilderFlag.FP16`), so an fp16 engine is built from the graph exported in fp16.
The serialized engine is cached under a key of ONNX sha256 + library version + build target (the GPU's
name, or for TensorRT-RTX its compute capability) + shape + precision, in a file that starts with the
sha256 of the engine bytes: a damaged file is found without a GPU to deserialize it. An entry that fails
its digest, does not deserialize (another library, another GPU) or whose I/O differs is deleted and rebuilt.
Run: torch CUDA tensors (DeviceHistory ping-pong buffers) bound by `set_tensor_address`, executed with
`execute_async_v3` on a dedicated (non-default) torch stream; optionally captured in CUDA graphs, one
per ping-pong parity since the bound addresses alternate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from carla_bridge.core.files import write_atomic
from neural_render.runtime.buffers import DeviceHistory
from neural_render.runtime.common import Stage, log
from neural_render.model import GeneratorConfig
from neural_render.runtime.onnx import OUTPUT_NAMES, input_names

DIGEST_BYTES = 32  # the sha256 in front of every cached engine


def engine_key(onnx_bytes: bytes, version: str, target: str, size: tuple[int, int], precision: str) -> str:
    """Cache key: any change of graph, library, build target, shape or precision gives another engine file."""
    h = hashlib.sha256(onnx_bytes)
    h.update(json.dumps([version, target, list(size), precision]).encode())
    return h.hexdigest()


class EngineCache:
    """One cached engine file: the sha256 of the engine, then the engine."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> bytes | None:
        """The cached engine, or None when there is none or it fails its digest (deleted, with a warning)."""
        if not self.path.exists():
            return None
        blob = self.path.read_bytes()
        digest, data = blob[:DIGEST_BYTES], blob[DIGEST_BYTES:]
        if data and hashlib.sha256(data).digest() == digest:
            return data
        self.discard("is corrupt (its digest does not match)")
        return None

    def store(self, data: bytes) -> None:
        write_atomic(self.path, hashlib.sha256(data).digest() + data)

    def discard(self, why: str) -> None:
        log.warning("tensorrt: cached engine %s %s; rebuilding", self.path, why)
        self.path.unlink(missing_ok=True)

    def get_or_build(self, build: Callable[[], bytes]) -> tuple[bytes, bool]:
        """(engine bytes, whether they were built now): the cached engine, else ``build()`` stored."""
        data = self.load()
        if data is not None:
            return data, False
        data = build()
        self.store(data)
        return data, True


_loggers: dict[str, object] = {}


def trt_logger(trt):
    """One logger per library: TensorRT keeps the first logger a builder or runtime was given, and warns
    about every other one."""
    if trt.__name__ not in _loggers:
        _loggers[trt.__name__] = trt.Logger(trt.Logger.WARNING)
    return _loggers[trt.__name__]


def parse_onnx(trt, onnx_bytes: bytes, strongly_typed: bool = True):
    """(builder, network, parser) of our ONNX graph; a RuntimeError naming every node that fails. Keep
    the parser while the network lives: the network refers to weights the parser holds."""
    logger = trt_logger(trt)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{trt.__name__} could not parse the ONNX graph: {errors}")
    return builder, network, parser


def serialize(trt, builder, network, config) -> bytes:
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{trt.__name__} engine build failed (see its log above)")
    return bytes(serialized)


class TensorRTRunner:
    """Runs a cached engine on the GPU: the part both backends share once the bytes exist. Subclasses set
    ``name`` and build ``(trt, engine_cache, build, frame_dtype)`` before calling ``start``."""

    name = "tensorrt"

    def start(self, trt, cache: EngineCache, build: Callable[[], bytes], config: GeneratorConfig,
              size: tuple[int, int], frame_dtype: torch.dtype, cuda_graph: bool) -> None:
        self.trt, self.cache, self.engine_path = trt, cache, cache.path
        self.io_names = input_names(config) + OUTPUT_NAMES
        self._runtime = trt.Runtime(trt_logger(trt))
        self.engine = self._load_or_build(build)
        self.context = self.engine.create_execution_context()
        width, height = size
        self.history = DeviceHistory(config.k, width, height, self.device, frame_dtype, config.weather_dim)
        self.stream = torch.cuda.Stream(self.device)  # TensorRT warns on (and serialises) the default stream
        self.cuda_graph = cuda_graph
        self.graphs: dict[int, object] = {}

    @property
    def compiled(self) -> bool:
        return self.cuda_graph

    def _load_or_build(self, build: Callable[[], bytes]):
        data, built = self.cache.get_or_build(build)
        engine = self._deserialize(data)
        if engine is None and not built:
            self.cache.discard("does not deserialize here or has other I/O (another library or GPU)")
            data, _ = self.cache.get_or_build(build)
            engine = self._deserialize(data)
        if engine is None:
            raise RuntimeError(f"{self.trt.__name__} could not deserialize the engine it just built")
        return engine

    def _deserialize(self, data: bytes):
        try:
            engine = self._runtime.deserialize_cuda_engine(data)
        except Exception:  # some versions raise instead of returning None
            return None
        if engine is None:
            return None
        names = {engine.get_tensor_name(i) for i in range(engine.num_io_tensors)}
        return engine if names == set(self.io_names) else None

    def reset(self) -> None:
        self.history.reset()

    def _bind(self) -> None:
        for name, tensor in zip(self.io_names, self.history.inputs() + self.history.outputs()):
            self.context.set_tensor_address(name, tensor.data_ptr())

    def _execute(self) -> None:
        parity = self.history.cur
        if not self.cuda_graph:
            self._bind()
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"{self.trt.__name__} execute_async_v3 failed")
            return
        if parity not in self.graphs:  # run once (lazy allocations, RTX's JIT), then capture this parity's graph
            self._bind()
            self.context.execute_async_v3(self.stream.cuda_stream)
            self.stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self.stream):
                self.context.execute_async_v3(self.stream.cuda_stream)
            self.graphs[parity] = graph
        self.graphs[parity].replay()

    def step(self, labels: np.ndarray, flow: np.ndarray | None, has_history: bool,
             timings: dict[str, tuple[int, int]], weather: np.ndarray | None = None) -> np.ndarray:
        h, sync = self.history, self.stream.synchronize
        with torch.cuda.stream(self.stream):
            with Stage(timings, "upload", sync):
                h.upload(labels, flow, has_history, weather)
            with Stage(timings, "inference", sync):
                self._execute()
                h.swap()
            with Stage(timings, "download"):
                return h.download()


def cuda_device(device: str | None, backend: str) -> torch.device:
    """The torch CUDA device a TensorRT backend runs on (the device string was checked where it entered)."""
    if not torch.cuda.is_available():  # device None: "auto" on a machine without a GPU
        raise RuntimeError(f"the {backend} backend needs a CUDA GPU visible to torch")
    device = torch.device(device if device and device.startswith("cuda") else "cuda")
    torch.cuda.set_device(device)
    return device
