"""Inference: `Renderer` over the torch, onnxruntime and tensorrt backends (one file each)."""

from neural_render.runtime.common import STAGES
from neural_render.runtime.renderer import PRECISIONS, Renderer
from neural_render.runtime.select import BACKENDS, available_backends, resolve_backend, unavailable_reason

__all__ = ["Renderer", "available_backends", "resolve_backend", "unavailable_reason", "BACKENDS", "PRECISIONS",
           "STAGES"]
