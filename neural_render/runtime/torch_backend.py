"""PyTorch backend: CPU or CUDA, fp32/fp16/bf16, channels_last, optional torch.compile
(compile=True: mode "reduce-overhead" on CUDA = CUDA graphs, "default" on CPU; a string names the mode,
e.g. "max-autotune"; a failed compile falls back to eager with a note)."""

from __future__ import annotations

import copy

import numpy as np
import torch

from neural_render.model import RenderStep, Vid2VidGenerator
from neural_render.runtime.buffers import DeviceHistory
from neural_render.runtime.common import DTYPES, Stage, log


class TorchBackend:
    name = "torch"

    def __init__(self, model: Vid2VidGenerator, size: tuple[int, int], device: str | None = None,
                 precision: str = "fp32", compile: bool | str = False, channels_last: bool = True):
        # precision and device were checked where they entered (Renderer, a tool's flags).
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if device.type == "cpu" and precision == "fp16":
            log.warning("torch backend: fp16 on the CPU is slow and imprecise; bf16 or fp32 is better there")
        self.device, self.precision, self.dtype = device, precision, DTYPES[precision]
        self.device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        width, height = size
        self.module = eval_step(model, device, self.dtype, channels_last)
        self.history = DeviceHistory(model.config.k, width, height, device, self.dtype, model.config.weather_dim)
        self.compiled = False
        self._run = self.module
        if compile:
            mode = compile if isinstance(compile, str) else ("reduce-overhead" if device.type == "cuda" else "default")
            # dynamic=False: shapes are static per renderer; without it a second renderer at another
            # size makes dynamo recompile with symbolic shapes (2.5x slower kernels at 2048x1024).
            self._run = torch.compile(self.module, mode=mode, fullgraph=True, dynamic=False)
            self.compiled = True
        self._sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None

    def reset(self) -> None:
        self.history.reset()

    def _forward(self, *inputs):
        if self.compiled and self.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # outputs of the last replay may be overwritten now
        try:
            return self._run(*inputs)
        except Exception as exc:  # compile needs a C++ toolchain / triton: run eager rather than crash
            if not self.compiled:
                raise
            log.warning("torch.compile failed (%s: %s); running eager", type(exc).__name__, _first_line(exc))
            self._run, self.compiled = self.module, False
            return self._run(*inputs)

    @torch.no_grad()
    def step(self, labels: np.ndarray, flow: np.ndarray | None, has_history: bool,
             timings: dict[str, tuple[int, int]], weather: np.ndarray | None = None) -> np.ndarray:
        h = self.history
        with Stage(timings, "upload", self._sync):
            h.upload(labels, flow, has_history, weather)
        with Stage(timings, "inference", self._sync):
            outs = self._forward(*h.inputs())
            for dst, src in zip(h.outputs(), outs):  # copy out: CUDA-graph outputs are reused memory
                dst.copy_(src)
            h.swap()
        with Stage(timings, "download"):
            return h.download()


def eval_step(model: Vid2VidGenerator, device: torch.device, dtype: torch.dtype,
              channels_last: bool = True) -> RenderStep:
    """An eval-mode RenderStep over a copy of ``model`` on ``device`` in ``dtype``: the module the torch
    backend runs, and the render service batches (neural_render.serve)."""
    # A copy: .to() is in place, and the caller's model must not turn fp16 / move to the GPU.
    module = RenderStep(copy.deepcopy(model)).to(device=device, dtype=dtype).eval()
    if channels_last:  # NHWC convs: tensor cores on CUDA, oneDNN's blocked layouts on CPU
        module = module.to(memory_format=torch.channels_last)
    return module


def _first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an error, cut at a word: inductor's messages run to many lines, and a cut at a
    fixed width would end the warning mid-word."""
    line = (str(error).strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[:limit].rsplit(" ", 1)[0] + " ..."
