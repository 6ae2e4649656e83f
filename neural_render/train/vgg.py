"""Optional VGG19 perceptual loss (pix2pixHD / imaginaire: relu1_1..relu5_1, weights 1/32..1), only
from a weights file the user already has: nothing is ever downloaded.

``--vgg-weights FILE``: a .safetensors (or a .pth/.pt state dict, read with weights_only=True, never
unpickled) holding torchvision's ``vgg19`` keys ``features.N.weight`` / ``features.N.bias`` (the
``features.`` prefix is optional).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

# torchvision vgg19 "features": numbers are conv widths, "M" max-pools.
_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]
_TAPS = {1: 1 / 32, 6: 1 / 16, 11: 1 / 8, 20: 1 / 4, 29: 1.0}  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1


def _features() -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 3
    for v in _CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
            cin = v
    return nn.Sequential(*layers)


def _load(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ValueError(f"--vgg-weights {path}: no such file (the VGG loss needs a local VGG19 weights file)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle arbitrary objects
    return {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}


class VGGLoss(nn.Module):
    def __init__(self, weights_path: str | Path) -> None:
        super().__init__()
        self.features = _features()[: max(_TAPS) + 1]
        state = _load(Path(weights_path))
        missing = self.features.load_state_dict(state, strict=False).missing_keys
        if missing:
            raise ValueError(f"--vgg-weights {weights_path}: not VGG19 features weights (missing {missing[:3]})")
        self.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1]; L1 between VGG activations, weighted per layer."""
        x = ((fake.float() + 1) / 2 - self.mean) / self.std
        y = ((real.float() + 1) / 2 - self.mean) / self.std
        loss = 0.0
        for i, layer in enumerate(self.features):
            x, y = layer(x), layer(y)
            if i in _TAPS:
                loss = loss + _TAPS[i] * F.l1_loss(x, y.detach())
        return loss
