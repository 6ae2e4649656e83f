"""Clip augmentation: resized random crops, horizontal flips, label noise.

Every geometric change is applied to all T frames of a clip alike and keeps the flow exact:
- resize by (sx, sy) scales flow x by sx and y by sy (flow is in pixels);
- a crop shifts both frames equally, so flow values are unchanged;
- a horizontal flip mirrors the flow field and negates its x component:
  F'(x, y) = (-Fx(W-1-x, y), Fy(W-1-x, y)), so warp(flip(prev), F') == flip(warp(prev, F))
  (align_corners=True puts pixel centres at the same places after mirroring).
Label noise (boundary erosion/dilation, small misclassified blobs) makes a model trained on perfect
simulator labels tolerate the imperfect labels of a segmentation network, and the reverse, the gap
reported for CARLA + vid2vid experiments; it touches the labels only, never the target image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from carla_bridge.core.labels import NUM_LABELS
from neural_render.train.clip import Clip


@dataclass
class AugmentConfig:
    flip_p: float = 0.5
    crop_scale_max: float = 1.25  # zoom in by up to this factor, then crop back to the output size
    label_noise_p: float = 0.3  # chance per frame of boundary noise, and separately of blobs
    max_radius: int = 2  # boundary erosion/dilation radius in pixels
    max_blobs: int = 3


def resize_clip(clip: Clip, width: int, height: int) -> Clip:
    """Resize every frame: labels/depth nearest, rgb bilinear (antialiased), flow bilinear and scaled."""
    t, h, w = clip["labels"].shape
    if (w, h) == (width, height):
        return clip
    sx, sy = width / w, height / h
    size = (height, width)
    out = dict(clip)
    out["labels"] = F.interpolate(clip["labels"][:, None].float(), size=size, mode="nearest-exact")[:, 0].to(torch.uint8)
    out["depth"] = F.interpolate(clip["depth"][:, None], size=size, mode="nearest-exact")[:, 0]
    rgb = F.interpolate(clip["rgb"].float(), size=size, mode="bilinear", align_corners=False, antialias=sx < 1 or sy < 1)
    out["rgb"] = rgb.round().clamp(0, 255).to(torch.uint8)
    flow = F.interpolate(clip["flow"], size=size, mode="bilinear", align_corners=False)
    out["flow"] = flow * torch.tensor([sx, sy], dtype=flow.dtype).view(1, 2, 1, 1)
    return out


def crop_clip(clip: Clip, x0: int, y0: int, width: int, height: int) -> Clip:
    out = dict(clip)
    for key in ("labels", "depth", "rgb", "flow"):
        out[key] = clip[key][..., y0 : y0 + height, x0 : x0 + width].contiguous()
    return out


def hflip_clip(clip: Clip) -> Clip:
    """Mirror every frame left-right; the flow is mirrored and its x component negated."""
    out = dict(clip)
    for key in ("labels", "depth", "rgb", "flow"):
        out[key] = clip[key].flip(-1)
    out["flow"] = out["flow"] * torch.tensor([-1.0, 1.0], dtype=out["flow"].dtype).view(1, 2, 1, 1)
    return out


def fit_crop(clip: Clip, width: int, height: int, rng: np.random.Generator, scale_max: float = 1.0) -> Clip:
    """Resize so the clip covers (width, height) times a random zoom in [1, scale_max], then crop randomly."""
    _, h, w = clip["labels"].shape
    zoom = 1.0 if scale_max <= 1.0 else float(rng.uniform(1.0, scale_max))
    cover = max(width / w, height / h) * zoom
    new_w, new_h = max(width, math.ceil(w * cover - 1e-6)), max(height, math.ceil(h * cover - 1e-6))
    clip = resize_clip(clip, new_w, new_h)
    x0 = int(rng.integers(0, new_w - width + 1))
    y0 = int(rng.integers(0, new_h - height + 1))
    return crop_clip(clip, x0, y0, width, height)


def _dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    k = 2 * radius + 1
    return F.max_pool2d(mask[None, None].float(), k, stride=1, padding=radius)[0, 0] > 0.5


def noisy_labels(labels: torch.Tensor, rng: np.random.Generator, cfg: AugmentConfig) -> torch.Tensor:
    """Label noise on one (H, W) uint8 map: grow or shrink one class's regions, add small blobs."""
    labels = labels.clone()
    h, w = labels.shape
    present = torch.unique(labels).tolist()
    if rng.random() < cfg.label_noise_p and len(present) > 1:
        cls = int(rng.choice(present))
        radius = int(rng.integers(1, cfg.max_radius + 1))
        mask = labels == cls
        if rng.random() < 0.5:  # dilate: the class spills over its neighbours' boundary pixels
            labels[_dilate(mask, radius)] = cls
        else:  # erode: its boundary pixels take the class found just outside, in a random direction
            ring = mask & _dilate(~mask, radius)
            dy, dx = (int(v) for v in rng.integers(-radius - 1, radius + 2, size=2))
            shifted = torch.roll(labels, shifts=(dy, dx), dims=(0, 1))
            take = ring & (shifted != cls)
            labels[take] = shifted[take]
    if rng.random() < cfg.label_noise_p:
        for _ in range(int(rng.integers(1, cfg.max_blobs + 1))):
            # A small ellipse of a wrong class, as a segmentation network's false positive.
            ry, rx = rng.uniform(0.01, 0.05) * h + 1, rng.uniform(0.01, 0.05) * w + 1
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            ys = torch.arange(h, dtype=torch.float32).view(h, 1)
            xs = torch.arange(w, dtype=torch.float32).view(1, w)
            blob = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1.0
            cls = int(rng.choice(present)) if rng.random() < 0.7 else int(rng.integers(0, NUM_LABELS))
            labels[blob] = cls
    return labels


def augment_clip(clip: Clip, width: int, height: int, rng: np.random.Generator, cfg: AugmentConfig) -> Clip:
    """Crop to (width, height) with a random zoom, maybe flip, add label noise frame by frame."""
    clip = fit_crop(clip, width, height, rng, cfg.crop_scale_max)
    if rng.random() < cfg.flip_p:
        clip = hflip_clip(clip)
    clip = dict(clip)
    clip["labels_clean"] = clip["labels"]  # occlusion tests and label-consistency use the clean map
    if cfg.label_noise_p > 0:
        clip["labels"] = torch.stack([noisy_labels(frame, rng, cfg) for frame in clip["labels"]])
    return clip
