"""Shared by the runtime tests: the tiny generator they render with, random frames, and a backend
wrapper that holds a render inside its step."""

import threading
import types

import numpy as np
import torch

from neural_render.model import build_generator


def tiny_generator_with_flow():
    """A seeded tiny generator whose flow head is non-zero, so the warp path really moves pixels
    (a fresh model's flow/mask head starts at zero: residual flow 0, mask 0.5)."""
    torch.manual_seed(0)
    model = build_generator("tiny").eval()
    torch.nn.init.normal_(model.flow_branch.head.weight, std=0.05)
    return model


def random_frame(seed: int, size: tuple[int, int], cut: bool = False, flow: bool = True) -> types.SimpleNamespace:
    """A SceneFrame-like frame of random tags (and random float32 flow unless ``flow`` is False)."""
    width, height = size
    rng = np.random.default_rng(seed)
    return types.SimpleNamespace(labels=rng.integers(0, 29, (height, width), dtype=np.uint8),
                                 flow=rng.standard_normal((height, width, 2)).astype(np.float32) if flow else None,
                                 cut=cut)


class HeldStep:
    """Wraps a Renderer's backend so that a render() stays inside its step until released."""

    def __init__(self, backend):
        self.backend, self.inside, self.release = backend, threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def step(self, *args):
        self.inside.set()
        self.release.wait(10)
        return self.backend.step(*args)
