"""Shared by the runtime tests: the tiny generator they render with."""

import torch

from neural_render.model import build_generator


def tiny_generator_with_flow():
    """A seeded tiny generator whose flow head is non-zero, so the warp path really moves pixels
    (a fresh model's flow/mask head starts at zero: residual flow 0, mask 0.5)."""
    torch.manual_seed(0)
    model = build_generator("tiny").eval()
    torch.nn.init.normal_(model.flow_branch.head.weight, std=0.05)
    return model
