"""Run the recurrent generator over a sequence, one frame at a time, as the renderer does at play time.

One class serves training (batched, with gradients) and evaluation (no grad), so the model is trained
on exactly the history it meets when deployed. The history follows ``model.RenderStep``: the K-1 most
recent outputs slide along (zeros right after a reset, when has_history = 0), and the label window
starts as the first frame's labels repeated K times. History outputs are detached: gradients flow
through one step of recurrence (vid2vid's generator also conditions on its detached past outputs).
"""

from __future__ import annotations

import torch

from neural_render.model import GeneratorOutput, Vid2VidGenerator


class Rollout:
    def __init__(self, model: Vid2VidGenerator, history: bool = True, detach: bool = True) -> None:
        self.model = model
        self.k = model.config.k
        self.history = history  # False: every frame as if just after a cut (frame by frame)
        self.detach = detach
        self.labels: torch.Tensor | None = None  # (B, K, H, W)
        self.frames: torch.Tensor | None = None  # (B, K-1, 3, H, W)
        self.started = False

    def reset(self) -> None:
        self.labels = self.frames = None
        self.started = False

    def step(self, labels: torch.Tensor, flow: torch.Tensor | None = None, has_flow: torch.Tensor | None = None,
             cut: bool = False, weather: torch.Tensor | None = None) -> GeneratorOutput:
        """labels (B, H, W) integer; flow (B, 2, H, W) engine flow t -> t-1 or None; has_flow (B,) 0/1;
        weather (B, D) (carla_bridge.core.weather), needed by a model with weather_dim, ignored by others."""
        b, h, w = labels.shape
        if cut or not self.history or not self.started:
            self.labels = labels.unsqueeze(1).expand(b, self.k, h, w)
            self.frames = torch.zeros(b, self.k - 1, 3, h, w, device=labels.device)
            has_history = torch.zeros(b, device=labels.device)
            flow, has_flow = None, None
        else:
            self.labels = torch.cat([self.labels[:, 1:], labels.unsqueeze(1)], 1)
            has_history = torch.ones(b, device=labels.device)
        if flow is None or has_flow is None:
            flow = torch.zeros(b, 2, h, w, device=labels.device)
            has_flow = torch.zeros(b, device=labels.device)
        out = self.model(self.labels, self.frames, flow, has_history, has_flow, weather)
        image = out.image.detach() if self.detach else out.image
        self.frames = torch.cat([self.frames[:, 1:], image.unsqueeze(1).to(self.frames.dtype)], 1)
        self.started = True
        return out


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B, 3, H, W) uint8, the rounding the renderer applies."""
    return ((image.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
