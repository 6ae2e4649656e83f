"""ONNX Runtime backend. CPU execution provider everywhere; on a CUDA machine the TensorRT and CUDA
EPs with IO binding onto torch CUDA tensors (the DeviceHistory ping-pong buffers: history never leaves
the GPU). onnxruntime-gpu loads on machines without a GPU but its CUDA EP then fails to initialise and
ORT silently drops it: we detect that from the session's providers and run on the CPU with a note."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from neural_render.model import Vid2VidGenerator
from neural_render.runtime.buffers import DeviceHistory, HostHistory
from neural_render.runtime.common import Stage, log
from neural_render.runtime.onnx import OUTPUT_NAMES, cached_onnx, input_names


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """The options every ONNX Runtime session of ours runs with (the backend's, the export check's)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # the CUDA EP's "failed to load" noise: we report it ourselves
    if threads:
        opts.intra_op_num_threads = threads
    # No busy-waiting worker threads: the game loop and the world share these cores, and spinning
    # threads starve them (measured on a loaded 2-core box: 49 -> 31 ms per frame at 256x128).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


class OrtBackend:
    name = "onnxruntime"
    compiled = False  # nothing that compile acts on

    def __init__(self, model: Vid2VidGenerator, size: tuple[int, int], device: str | None = None,
                 precision: str = "fp32", onnx_path: str | Path | None = None, threads: int | None = None,
                 use_trt_ep: bool = True):
        if precision != "fp32":  # the graph is exported in fp32; TRT EP runs it in fp16 when asked
            log.info("onnxruntime backend: graph is fp32; precision %s applies to the TensorRT EP only", precision)
        width, height = size
        self.k, self.width, self.height, self.weather_dim = model.config.k, width, height, model.config.weather_dim
        self.input_names = input_names(model.config)
        path = Path(onnx_path) if onnx_path else cached_onnx(model, width, height, "fp32")
        want_gpu = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
        available = ort.get_available_providers()
        providers: list = []
        # onnxruntime-gpu lists its CUDA providers on every machine; on one without a usable GPU, asking
        # for them prints a screenful of "failed to load libcublas" before ORT drops them. Skip them.
        if want_gpu and torch.cuda.is_available():
            if use_trt_ep and "TensorrtExecutionProvider" in available:
                cache = str(path.parent / "ort-trt")
                providers.append(("TensorrtExecutionProvider", {
                    "trt_fp16_enable": precision == "fp16", "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": cache, "trt_timing_cache_enable": True}))
            if "CUDAExecutionProvider" in available:
                providers.append("CUDAExecutionProvider")
        providers.append("CPUExecutionProvider")
        opts = session_options(threads)
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # a GPU EP that throws instead of dropping out: retry on the CPU
            if len(providers) == 1:
                raise
            log.warning("onnxruntime: GPU providers failed (%s); falling back to the CPU EP", str(exc)[:200])
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        active = self.session.get_providers()
        self.on_gpu = active[0] in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
        if want_gpu and not self.on_gpu:
            log.warning("onnxruntime: CUDA execution provider unavailable here (no GPU or CUDA libraries); "
                        "running on the CPU execution provider")
        self.providers = active
        # What actually runs: the graph is fp32; only the TensorRT EP with trt_fp16_enable lowers it.
        self.precision = "fp16" if precision == "fp16" and active[0] == "TensorrtExecutionProvider" else "fp32"
        self.device_name = active[0].replace("ExecutionProvider", "") if self.on_gpu else "cpu"
        self.onnx_path = path
        self.binding = None
        if self.on_gpu:
            self._init_iobinding()
        else:
            self.host = HostHistory(self.k, width, height, self.weather_dim)

    # --- CPU / plain path: numpy in, numpy out, history as returned arrays --------------------------
    def reset(self) -> None:
        if self.binding is not None:
            self.history.reset()
        else:
            self.host.reset()

    def step(self, labels: np.ndarray, flow: np.ndarray | None, has_history: bool,
             timings: dict[str, tuple[int, int]], weather: np.ndarray | None = None) -> np.ndarray:
        if self.binding is not None:
            return self._step_bound(labels, flow, has_history, timings, weather)
        with Stage(timings, "upload"):  # host memory is the device here: just lay the inputs out
            feeds = self.host.feeds(labels, flow, has_history, weather)
        with Stage(timings, "inference"):
            _, image_u8, next_frames, next_labels = self.session.run(None, feeds)
            self.host.keep(next_frames, next_labels)
        with Stage(timings, "download"):
            return image_u8[0]

    # --- GPU path: IO binding onto torch CUDA ping-pong buffers ---------------------------------------
    def _init_iobinding(self) -> None:
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.history = DeviceHistory(self.k, self.width, self.height, self.device, torch.float32, self.weather_dim)
        self.binding = self.session.io_binding()
        self._sync = lambda: torch.cuda.synchronize(self.device)
        self.device_name += f" on {torch.cuda.get_device_name(self.device)}"

    def _bind(self, name: str, tensor: torch.Tensor, output: bool) -> None:
        np_dtype = {torch.uint8: np.uint8, torch.float32: np.float32, torch.float16: np.float16}[tensor.dtype]
        bind = self.binding.bind_output if output else self.binding.bind_input
        bind(name, "cuda", self.device.index or 0, np_dtype, list(tensor.shape), tensor.data_ptr())

    def _step_bound(self, labels, flow, has_history, timings, weather) -> np.ndarray:
        h = self.history
        with Stage(timings, "upload", self._sync):
            h.upload(labels, flow, has_history, weather)
        with Stage(timings, "inference", self._sync):
            for name, t in zip(self.input_names, h.inputs()):
                self._bind(name, t, output=False)
            for name, t in zip(OUTPUT_NAMES, h.outputs()):
                self._bind(name, t, output=True)
            self.binding.synchronize_inputs()
            self.session.run_with_iobinding(self.binding)
            self.binding.synchronize_outputs()
            h.swap()
        with Stage(timings, "download"):
            return h.download()
