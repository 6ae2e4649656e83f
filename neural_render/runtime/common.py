"""What the Renderer and every backend share: the names of precisions, backends and stages, the checks a
frame passes where it enters the Renderer, the Backend interface, stage timing."""

from __future__ import annotations

import logging
import numbers
import time
from typing import Protocol

import numpy as np
import torch

log = logging.getLogger("neural_render.runtime")

PRECISIONS = ("fp32", "fp16", "bf16")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
BACKENDS = ("torch", "onnxruntime", "tensorrt", "tensorrt-rtx", "openvino")
# The compute capabilities TensorRT-RTX builds for (its support matrix: Turing 7.5, Ampere 8.6, Ada 8.9,
# Blackwell 12.0 / 12.1); not Hopper 9.0 nor the datacenter Ampere 8.0, which keep datacenter TensorRT.
RTX_CAPABILITIES = ((7, 5), (8, 6), (8, 9), (12, 0), (12, 1))
STAGES = ("preprocess", "upload", "inference", "download")  # Renderer.last_timings, in order


def precision_note(flag: str, asked: str, ran: str, backend: str, device: str) -> str | None:
    """The line a tool prints when a backend ran another precision than asked (onnxruntime on the CPU
    runs fp32 only): its figures are of what ran, and the user should not read them as ``asked``."""
    if ran == asked:
        return None
    return f"note: {flag} {asked} is not available with {backend} on {device}; running {ran}"


def compile_note(flag: str, asked: bool | str, compiled: bool, backend: str) -> str | None:
    """The line a tool prints when ``flag`` asked for compilation and the backend runs uncompiled, so
    that its speed is not read as a compiled one."""
    if not asked or compiled:
        return None
    if backend in ("onnxruntime", "openvino"):
        return (f"note: {flag} applies to the torch backend (and TensorRT's CUDA graphs) only; "
                f"{backend} runs uncompiled")
    return f"note: {flag} did not take with {backend} (see the warning above); it runs uncompiled"


def frame_fields(frame: object) -> tuple[object, object, object]:
    """(labels, flow, cut) of a SceneFrame-like object, or a ValueError saying what a frame must have."""
    try:
        return frame.labels, frame.flow, frame.cut
    except AttributeError:
        raise ValueError(f"frame: expected a SceneFrame (or any object with .labels, .flow and .cut "
                         f"attributes), got {type(frame).__name__}; a dict: types.SimpleNamespace(**d)") from None


def check_inputs(labels: object, flow: object, size: tuple[int, int], num_classes: int) -> None:
    """Raise ValueError naming the problem for anything a backend must never see: the one check of a
    frame, where it enters Renderer.render; the backends trust what passed."""
    width, height = size
    if not isinstance(labels, np.ndarray):
        raise ValueError(f"frame.labels must be a numpy array (H, W) uint8, got {type(labels).__name__}")
    if labels.dtype != np.uint8:
        raise ValueError(f"frame.labels dtype {labels.dtype}: expected uint8 tag ids (labels.astype(np.uint8))")
    if labels.ndim != 2:
        raise ValueError(f"frame.labels shape {labels.shape}: expected (H, W) = ({height}, {width})")
    if labels.shape != (height, width):
        raise ValueError(f"size mismatch: frame.labels is {labels.shape[1]}x{labels.shape[0]} but the renderer "
                         f"was built for {width}x{height}; build Renderer(size=...) to match the source")
    top = int(labels.max())
    if top >= num_classes:
        raise ValueError(f"frame.labels holds id {top}, outside 0..{num_classes - 1} (CARLA semantic tags)")
    if flow is None:
        return
    if not isinstance(flow, np.ndarray):
        raise ValueError(f"frame.flow must be a numpy array (H, W, 2) float32 or None, got {type(flow).__name__}")
    if flow.dtype != np.float32:
        raise ValueError(f"frame.flow dtype {flow.dtype}: expected float32 pixels (flow.astype(np.float32))")
    if flow.shape != (height, width, 2):
        raise ValueError(f"frame.flow shape {flow.shape}: expected (H, W, 2) = ({height}, {width}, 2)")
    if not np.isfinite(flow).all():
        raise ValueError("frame.flow holds NaN or inf values; fix the source or pass flow=None")


def check_frame_cut(cut: object) -> bool:
    """frame.cut as a bool: True, False, None (no cut), numpy bools and the ints 0 / 1. Anything else is
    a ValueError: a truthy string such as 'no' would otherwise drop the history on every frame."""
    if cut is None:
        return False
    if isinstance(cut, (bool, np.bool_)):
        return bool(cut)
    if isinstance(cut, numbers.Integral) and int(cut) in (0, 1):
        return bool(cut)
    raise ValueError(f"frame.cut must be a bool (True after a camera jump), got {type(cut).__name__} {cut!r:.40}")


class HistorySwitch:
    """``history_enabled`` of the Renderer and the RemoteRenderer: off, every frame is rendered from its
    labels alone. ``_has_history`` says whether the next frame may use the history."""

    _history_enabled = True
    _has_history = False

    @property
    def history_enabled(self) -> bool:
        return self._history_enabled

    @history_enabled.setter
    def history_enabled(self, value: bool) -> None:
        value = bool(value)
        if value != self._history_enabled:
            # a change of the switch: turning it back on starts from a fresh frame, not a stale one.
            # Writing the value it already has (a loop syncing a setting every tick) keeps the history.
            self._has_history = False
        self._history_enabled = value


class Backend(Protocol):
    """One inference engine with its history on its device (see renderer.py for the step semantics)."""

    name: str
    device_name: str
    precision: str  # what runs, which may differ from what was asked (onnxruntime on the CPU: fp32)
    compiled: bool  # torch.compile still in place, or TensorRT replaying CUDA graphs

    def reset(self) -> None: ...

    def step(self, labels: np.ndarray, flow: np.ndarray | None, has_history: bool,
             timings: dict[str, tuple[int, int]]) -> np.ndarray: ...


class Stage:
    """`with Stage(timings, "upload", sync):` records perf_counter_ns (start, end); `sync` (e.g.
    torch.cuda.synchronize) runs before the end stamp so async device work lands in its own stage."""

    __slots__ = ("timings", "name", "sync", "start")

    def __init__(self, timings: dict, name: str, sync=None):
        self.timings, self.name, self.sync = timings, name, sync

    def __enter__(self):
        self.start = time.perf_counter_ns()
        return self

    def __exit__(self, *exc):
        if self.sync is not None and exc[0] is None:
            self.sync()
        self.timings[self.name] = (self.start, time.perf_counter_ns())
        return False
