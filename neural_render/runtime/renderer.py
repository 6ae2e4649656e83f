"""`Renderer`: SceneFrame-like in, (H, W, 3) uint8 out, through one of the inference backends.

Per frame: check the inputs (a bad frame raises ValueError here, never inside a backend), decide
whether there is history (not after a cut, a reset, or with history_enabled off), and hand the uint8
labels (+ float32 flow, + the weather for a model that takes it) to the backend, which keeps the K-1
previous outputs and label maps on its device. `last_timings` holds perf_counter_ns (start, end) of
each stage for the profiler.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import numpy as np

from carla_bridge.core.frames import parse_size
from carla_bridge.core.weather import CLEAR_NOON, WEATHER_DIM, check_weather
from neural_render.checkpoint import load_generator
from neural_render.model import Vid2VidGenerator
from neural_render.runtime.common import (PRECISIONS, HistorySwitch, Stage, check_frame_cut, check_inputs,
                                          frame_fields, log)
from neural_render.runtime.select import create_backend


class Renderer(HistorySwitch):
    """Labels (+ flow) of each tick in, the generated (H, W, 3) uint8 RGB frame out; see the README's
    "Use it from your own simulator". ``precision`` is a request: ``renderer.precision`` says what runs
    (onnxruntime on the CPU runs fp32). One Renderer keeps one drive's history (and its backend one set
    of input/output buffers), so call it from one thread at a time (any thread): a render() or reset()
    while another thread's runs is a RuntimeError, not a wrong frame. Build one per camera or thread.
    ``close()`` (or a ``with`` block) drops the backend without waiting for the garbage collector (on
    CUDA torch keeps the freed memory in its cache for the next Renderer; torch.cuda.empty_cache()
    returns it to the driver)."""

    def __init__(self, model: Vid2VidGenerator | str | Path, backend: str = "auto", device: str | None = None,
                 precision: str = "fp32", size: tuple[int, int] = (256, 128), compile: bool | str = False,
                 preset: str | None = None):
        if precision not in PRECISIONS:
            raise ValueError(f"precision '{precision}': choose one of {PRECISIONS}")
        if isinstance(model, (str, os.PathLike)):
            model = load_generator(model, preset=preset)
        elif not isinstance(model, Vid2VidGenerator):
            raise ValueError(f"model: expected a Vid2VidGenerator or the path of its .safetensors weights, got "
                             f"{type(model).__name__}")
        elif preset is not None and model.config.name != preset:
            raise ValueError(f"preset '{preset}' was asked for but the model is a '{model.config.name}' generator; "
                             f"pass preset=None or preset='{model.config.name}'")
        # No model.eval() here: that would flip the caller's module (say, one still training) out of
        # training mode. Every backend runs its own eval-mode copy (torch: deepcopy; ONNX: export copy).
        # The size is checked here, once: the backends and the ONNX export trust it.
        self.size = parse_size(size, "size")
        model.config.check_size(*self.size)
        if model.config.weather_dim not in (0, WEATHER_DIM):
            raise ValueError(f"model '{model.config.name}' takes a weather vector of {model.config.weather_dim} "
                             f"values; frames carry {WEATHER_DIM} (carla_bridge.core.weather): retrain it")
        self.config = model.config
        self.model_name = model.config.name
        try:
            self._backend = create_backend(backend, model, self.size, device, precision, compile)
        except (RuntimeError, MemoryError) as error:
            raise _out_of_memory(error, self.size) or error
        self.backend_name = self._backend.name
        self.device_name = self._backend.device_name
        self.precision = self._backend.precision
        self._history_enabled = True
        self.last_timings: dict[str, tuple[int, int]] = {}
        self.frames_rendered = 0
        self._has_history = False
        self._weather_noted = False  # the one line saying this model ignores the frames' weather
        self._in_use = threading.Lock()  # taken without waiting by render() and reset(): see _one_caller

    @property
    def compiled(self) -> bool:
        """Whether frames run compiled (torch.compile, or TensorRT's CUDA graphs); False once closed. A
        torch.compile that fails at the first frame falls back to eager, so read it after a render."""
        return self._backend is not None and self._backend.compiled

    @property
    def takes_weather(self) -> bool:
        """Whether the render follows frame.weather; False for a model trained without it."""
        return self.config.weather_dim > 0

    def reset(self) -> None:
        """Drop the history: the next frame is rendered from its labels alone."""
        with self._one_caller():
            self._drop_history()

    def _drop_history(self) -> None:
        self._has_history = False
        self._open_backend().reset()

    @contextlib.contextmanager
    def _one_caller(self):
        """Refuse a second thread at once rather than queue it: the backends share their buffers and
        history between calls, and two drives interleaved through one history are both wrong anyway."""
        if not self._in_use.acquire(blocking=False):
            raise RuntimeError(f"{self!r} is in use by another thread: use one Renderer per thread "
                               f"(one Renderer keeps one drive's history)")
        try:
            yield
        finally:
            self._in_use.release()

    def close(self) -> None:
        """Drop the backend (its device buffers, ONNX Runtime session or TensorRT engine). Idempotent."""
        self._backend = None

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_backend(self):
        if self._backend is None:
            raise RuntimeError(f"{self!r} is closed: build a new Renderer to render again")
        return self._backend

    def render(self, frame) -> np.ndarray:
        with self._one_caller():
            return self._render(frame)

    def _render(self, frame) -> np.ndarray:
        backend = self._open_backend()
        timings: dict[str, tuple[int, int]] = {}
        with Stage(timings, "preprocess"):  # the frame enters here: checked once, then trusted
            labels, flow, cut = frame_fields(frame)
            check_inputs(labels, flow, self.size, self.config.num_classes)
            weather = self._weather(getattr(frame, "weather", None))
            if check_frame_cut(cut):
                self._drop_history()
            has_history = self._has_history and self._history_enabled
            labels = np.ascontiguousarray(labels)
        try:
            image = backend.step(labels, flow, has_history, timings, weather)
        except (RuntimeError, MemoryError) as error:
            raise _out_of_memory(error, self.size) or error
        self._has_history = self._history_enabled
        self.frames_rendered += 1
        self.last_timings = timings
        return image

    def _weather(self, weather: object) -> np.ndarray | None:
        """frame.weather as the backend takes it: the checked vector for a weather model (clear noon when
        the frame has none), None for a model without weather, which says so once."""
        if not self.takes_weather:
            if weather is not None and not self._weather_noted:
                log.warning("model '%s' was trained without weather input: the render ignores the frames' "
                            "weather (C / Shift+C change the engine image only)", self.model_name)
                self._weather_noted = True
            return None
        return CLEAR_NOON if weather is None else check_weather(weather, "frame.weather")

    def __repr__(self) -> str:
        w, h = self.size
        return (f"Renderer({self.model_name} {w}x{h}, backend={self.backend_name}, device={self.device_name}, "
                f"precision={self.precision})")


def _out_of_memory(error: BaseException, size: tuple[int, int]) -> MemoryError | None:
    """A MemoryError naming the size for an allocation failure (torch's "DefaultCPUAllocator: can't
    allocate memory", CUDA's "out of memory", ONNX Runtime's "Failed to allocate"), whose own message
    gives a byte count but not what to change; None for any other error."""
    text = str(error).lower()
    if not (isinstance(error, MemoryError) or "allocate" in text or "out of memory" in text):
        return None
    width, height = size
    return MemoryError(f"size {width}x{height}: not enough memory to render at this size ({str(error)[:160]}); "
                       "use a smaller size, or a device with more memory")
