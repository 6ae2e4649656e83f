"""Sliced Wasserstein distance between Laplacian-pyramid patches of two image sets: a distribution and
sharpness measure that needs no downloaded network.

After Karras, Aila, Laine, Lehtinen, "Progressive Growing of GANs for Improved Quality, Stability, and
Variation", ICLR 2018, section 5 and appendix D: each image is split into a Laplacian pyramid (Burt &
Adelson 1983), 7x7 neighbourhoods are sampled at random from every level, each channel of a level's
descriptors is normalised to zero mean and unit variance (per set), and the two sets of a level are
compared by the sliced Wasserstein distance (Rabin et al. 2011): the mean, over random unit directions,
of the 1-D Wasserstein-1 distance between the projected descriptors. A blurred image loses the fine
levels' detail, so its patches no longer look like the real ones there: PSNR rewards the blur, SWD
does not. The paper's figures are x 1e3; ours are not scaled.

Use: ``PatchSampler`` collects descriptors frame by frame (a fixed number per frame and level, so a
drive of 2,000 frames stays small), ``sliced_wasserstein`` compares two collections level by level.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PATCH = 7            # the paper's neighbourhood: 7x7 pixels, 3 colours -> 147-dimensional descriptors
MIN_LEVEL_SIDE = 16  # the paper's coarsest level for 1024^2 images is 16x16
DIRECTIONS = 512     # random projections per level: the paper's 4 repeats of 128 directions

# The 5-tap binomial kernel (1, 4, 6, 4, 1) / 16: Burt & Adelson's Gaussian pyramid filter.
_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = _BINOMIAL.to(x)
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="reflect"), k.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="reflect"), k.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)


def pyramid_levels(height: int, width: int) -> int:
    """How many levels a (height, width) image gets: halving until the shorter side would drop below
    MIN_LEVEL_SIDE (at least one level: the image itself)."""
    levels, side = 1, min(height, width)
    while side // 2 >= MIN_LEVEL_SIDE:
        levels, side = levels + 1, side // 2
    return levels


def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass levels of (B, C, H, W) images, finest first; the last level is the low-pass rest, so
    the levels add back up to the image (upsampled)."""
    bands, current = [], images.float()
    for _ in range(levels - 1):
        smaller = _blur(current)[..., ::2, ::2]
        back = F.interpolate(smaller, size=current.shape[-2:], mode="bilinear", align_corners=False)
        bands.append(current - back)
        current = smaller
    return bands + [current]


class PatchSampler:
    """Random 7x7 descriptors of every pyramid level of the frames it is given, ``per_frame`` from each
    frame and level, from a seeded generator: two samplers with the same seed take the same positions,
    so a generated and a real drive are compared where they are alike. ``descriptors()`` gives one
    (N, 3 * 7 * 7) tensor per level."""

    def __init__(self, height: int, width: int, per_frame: int = 64, seed: int = 0) -> None:
        self.levels = pyramid_levels(height, width)
        self.per_frame = per_frame
        self._generator = torch.Generator().manual_seed(seed)
        self._collected: list[list[torch.Tensor]] = [[] for _ in range(self.levels)]

    def add(self, images: torch.Tensor) -> None:
        """Sample descriptors of (B, 3, H, W) images in [0, 1]."""
        for level, band in enumerate(laplacian_pyramid(images, self.levels)):
            b, c, h, w = band.shape
            patches = band.unfold(2, PATCH, 1).unfold(3, PATCH, 1)  # (B, C, h', w', 7, 7), a view
            rows, cols = patches.shape[2], patches.shape[3]
            y = torch.randint(rows, (b, self.per_frame), generator=self._generator)
            x = torch.randint(cols, (b, self.per_frame), generator=self._generator)
            batch = torch.arange(b).view(b, 1).expand_as(y)
            chosen = patches.permute(0, 2, 3, 1, 4, 5)[batch, y.to(band.device), x.to(band.device)]
            self._collected[level].append(chosen.reshape(b * self.per_frame, c * PATCH * PATCH).cpu())

    def descriptors(self, frames: slice = slice(None)) -> list[torch.Tensor]:
        """The descriptors of each level, of the frames ``frames`` selects (in the order they were added)."""
        return [torch.cat(per_level[frames]) for per_level in self._collected]

    def __len__(self) -> int:
        return len(self._collected[0])


def _normalised(descriptors: torch.Tensor) -> torch.Tensor:
    """Each colour channel to zero mean and unit variance over the set (the paper's normalisation)."""
    d = descriptors.view(descriptors.shape[0], 3, -1)
    mean = d.mean(dim=(0, 2), keepdim=True)
    std = d.std(dim=(0, 2), keepdim=True).clamp_min(1e-8)
    return ((d - mean) / std).view_as(descriptors)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: int = DIRECTIONS, seed: int = 0) -> float:
    """SWD between two (N, D) descriptor sets of equal N: project on ``directions`` random unit vectors,
    sort, and average |a_(i) - b_(i)| over the sorted pairs and the directions (the 1-D Wasserstein-1
    distance of equal-sized empirical distributions is the mean gap of their order statistics)."""
    if a.shape != b.shape:
        raise ValueError(f"sliced_wasserstein: both sets need the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(a.shape[1], directions, generator=g, dtype=torch.float64)
    dirs /= dirs.norm(dim=0, keepdim=True)
    pa = (_normalised(a.double()) @ dirs).sort(dim=0).values
    pb = (_normalised(b.double()) @ dirs).sort(dim=0).values
    return float((pa - pb).abs().mean())


def swd_by_level(generated: list[torch.Tensor], real: list[torch.Tensor]) -> list[float]:
    """SWD of each pyramid level (finest first) between two samplers' descriptors."""
    return [sliced_wasserstein(g, r) for g, r in zip(generated, real)]
