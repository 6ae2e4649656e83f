"""Inference: `Renderer` over the torch, onnxruntime and tensorrt backends (one file each), and the
ONNX export and cache those two build from (onnx.py)."""

from neural_render.runtime.common import BACKENDS, PRECISIONS, STAGES
from neural_render.runtime.renderer import Renderer
from neural_render.runtime.select import available_backends, resolve_backend, unavailable_reason

__all__ = ["Renderer", "available_backends", "resolve_backend", "unavailable_reason", "BACKENDS", "PRECISIONS",
           "STAGES"]
