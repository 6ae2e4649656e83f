"""Augmentation keeps flow consistent with the images (neural_render/train/augment.py)."""

import numpy as np
import torch

from carla_bridge.core.labels import NUM_LABELS
from neural_render.train.augment import (AugmentConfig, augment_clip, crop_clip, fit_crop, hflip_clip, noisy_labels,
                                         resize_clip)
from neural_render.warp import warp


def _clip(t: int = 2, h: int = 16, w: int = 24, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, NUM_LABELS, (t, h, w), generator=g, dtype=torch.uint8)
    return {
        "labels": labels,
        "rgb": torch.randint(0, 256, (t, 3, h, w), generator=g, dtype=torch.uint8),
        "flow": torch.randn(t, 2, h, w, generator=g) * 3,
        "has_flow": torch.tensor([0.0] + [1.0] * (t - 1)),
        "depth": torch.rand(t, h, w, generator=g) * 50,
        "has_depth": torch.ones(t),
    }


def test_flip_commutes_with_warp():
    clip = _clip()
    prev = clip["rgb"][0:1].float()
    flow = clip["flow"][1:2]
    flipped = hflip_clip(clip)
    lhs = warp(flipped["rgb"][0:1].float(), flipped["flow"][1:2])  # warp(flipped prev, flipped flow)
    rhs = warp(prev, flow).flip(-1)  # flipped(warp(prev, flow))
    assert torch.allclose(lhs, rhs, atol=1e-3)


def test_flip_negates_flow_x_only():
    clip = _clip()
    clip["flow"][:] = torch.tensor([2.0, 1.0]).view(1, 2, 1, 1)
    flipped = hflip_clip(clip)
    assert torch.all(flipped["flow"][:, 0] == -2.0) and torch.all(flipped["flow"][:, 1] == 1.0)
    assert torch.equal(flipped["labels"], clip["labels"].flip(-1))


def test_resize_scales_flow_and_crop_keeps_it():
    clip = _clip()
    clip["flow"][:] = torch.tensor([2.0, 1.0]).view(1, 2, 1, 1)
    big = resize_clip(clip, 48, 48)  # x2 horizontally, x3 vertically
    assert big["labels"].shape == (2, 48, 48) and big["rgb"].dtype == torch.uint8
    assert torch.allclose(big["flow"][:, 0], torch.tensor(4.0)) and torch.allclose(big["flow"][:, 1], torch.tensor(3.0))
    small = crop_clip(big, 5, 7, 24, 16)
    assert small["flow"].shape == (2, 2, 16, 24) and torch.allclose(small["flow"][:, 0], torch.tensor(4.0))
    out = fit_crop(clip, 20, 12, np.random.default_rng(0), scale_max=1.3)
    assert out["rgb"].shape == (2, 3, 12, 20)


def test_label_noise_changes_only_labels_and_stays_valid():
    clip = _clip(t=3, h=32, w=48)
    clip["labels"][:] = 1
    clip["labels"][:, :, 24:] = 9
    rng = np.random.default_rng(3)
    cfg = AugmentConfig(flip_p=0.0, crop_scale_max=1.0, label_noise_p=1.0)
    out = augment_clip(clip, 48, 32, rng, cfg)
    assert torch.equal(out["rgb"], clip["rgb"]) and torch.equal(out["labels_clean"], clip["labels"])
    assert out["labels"].dtype == torch.uint8 and int(out["labels"].max()) < NUM_LABELS
    changed = (out["labels"] != clip["labels"]).float().mean()
    assert 0 < changed < 0.3  # noise, not a different scene


def test_label_noise_dilates_or_erodes_boundaries():
    labels = torch.ones(40, 40, dtype=torch.uint8)
    labels[:, 20:] = 3
    cfg = AugmentConfig(label_noise_p=1.0, max_blobs=1)
    seen_change = False
    for seed in range(6):
        noisy = noisy_labels(labels, np.random.default_rng(seed), AugmentConfig(label_noise_p=1.0, max_blobs=1))
        diff = noisy != labels
        seen_change |= bool(diff[:, 17:23].any())
    assert seen_change and cfg.max_radius == 2
