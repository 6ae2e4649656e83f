"""Discriminators of vid2vid (Wang et al., NeurIPS 2018, sec. 3.2): a multi-scale PatchGAN image
discriminator D_I on (one-hot labels, image) and a temporal discriminator D_V on K consecutive frames
with the flow between them. Both follow pix2pixHD's NLayerDiscriminator (Wang et al., CVPR 2018):
4x4 convolutions, stride 2, instance norm, LeakyReLU(0.2), 1-channel patch logits, and return every
intermediate activation for the feature-matching loss.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from carla_bridge.core.labels import NUM_LABELS


class PatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int, filters: int = 64, layers: int = 3, max_filters: int = 512) -> None:
        super().__init__()
        blocks = [nn.Sequential(nn.Conv2d(in_channels, filters, 4, 2, 2), nn.LeakyReLU(0.2, True))]
        channels = filters
        for i in range(1, layers + 1):
            out = min(channels * 2, max_filters)
            stride = 2 if i < layers else 1  # the last feature block keeps the resolution (pix2pixHD)
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(channels, out, 4, stride, 2),
                    nn.InstanceNorm2d(out),
                    nn.LeakyReLU(0.2, True),
                )
            )
            channels = out
        blocks.append(nn.Conv2d(channels, 1, 4, 1, 2))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Intermediate features, the last entry being the patch logits."""
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats


class MultiscaleDiscriminator(nn.Module):
    """``scales`` PatchGANs on the input downsampled 1x, 2x, 4x... (pix2pixHD's coarse-to-fine D)."""

    def __init__(self, in_channels: int, filters: int = 64, layers: int = 3, scales: int = 2) -> None:
        super().__init__()
        self.nets = nn.ModuleList(PatchDiscriminator(in_channels, filters, layers) for _ in range(scales))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        results = []
        for i, net in enumerate(self.nets):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            results.append(net(x))
        return results


def one_hot(labels: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N, H, W) integer tags -> (N, NUM_LABELS, H, W) one-hot."""
    return F.one_hot(labels.long(), NUM_LABELS).permute(0, 3, 1, 2).to(dtype)


class ImageDiscriminator(MultiscaleDiscriminator):
    """D_I: is this image a real frame for these labels? Input: one-hot labels and the RGB image."""

    def __init__(self, filters: int = 64, layers: int = 3, scales: int = 2) -> None:
        super().__init__(NUM_LABELS + 3, filters, layers, scales)

    def score(self, labels: torch.Tensor, image: torch.Tensor) -> list[list[torch.Tensor]]:
        return self(torch.cat([one_hot(labels, image.dtype), image], 1))


FLOW_SCALE = 20.0  # pixels; brings flow into roughly the [-1, 1] range of the images beside it


class TemporalDiscriminator(MultiscaleDiscriminator):
    """D_V: are these K consecutive frames real video, given the flow between them? Input: K images and
    the K-1 flows (frame k -> k-1), so it judges motion consistency, not single frames."""

    def __init__(self, k: int = 3, filters: int = 64, layers: int = 3, scales: int = 2) -> None:
        super().__init__(3 * k + 2 * (k - 1), filters, layers, scales)
        self.k = k

    def score(self, frames: torch.Tensor, flows: torch.Tensor) -> list[list[torch.Tensor]]:
        """frames (N, K, 3, H, W), flows (N, K-1, 2, H, W) in pixels."""
        n, _, _, h, w = frames.shape
        x = torch.cat([frames.reshape(n, -1, h, w), (flows / FLOW_SCALE).reshape(n, -1, h, w).to(frames.dtype)], 1)
        return self(x)
