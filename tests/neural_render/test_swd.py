"""The sliced Wasserstein distance of Laplacian-pyramid patches (neural_render/swd.py) on constructed
image sets: it does not reward blur, and its pieces give the answers they must."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from neural_render.swd import PatchSampler, laplacian_pyramid, pyramid_levels, sliced_wasserstein, swd_by_level


def _textures(seed: int, n: int = 8, h: int = 64, w: int = 128) -> torch.Tensor:
    """Images with detail at every scale (noise summed over octaves, as natural images have), in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    image = torch.zeros(n, 3, h, w)
    for octave in range(5):
        coarse = torch.rand(n, 3, max(h >> octave, 1), max(w >> octave, 1), generator=g)
        image += F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False) / 5
    return image


def _swd(generated: torch.Tensor, real: torch.Tensor) -> list[float]:
    samplers = [PatchSampler(64, 128, per_frame=256, seed=1) for _ in range(2)]
    samplers[0].add(generated)
    samplers[1].add(real)
    return swd_by_level(samplers[0].descriptors(), samplers[1].descriptors())


def test_a_blurred_copy_scores_a_worse_swd_than_another_sharp_sample():
    real, other = _textures(0), _textures(1)
    blurred = F.avg_pool2d(F.pad(other, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    sharp, blur = _swd(other, real), _swd(blurred, real)
    assert blur[0] > 1.5 * sharp[0], (sharp, blur)  # the finest level sees the lost detail most
    assert sum(blur) / len(blur) > sum(sharp) / len(sharp)


def test_identical_sets_are_at_distance_zero_and_the_distance_is_symmetric():
    a = torch.randn(500, 147, generator=torch.Generator().manual_seed(2))
    b = a[:, :1].expand(500, 147) + 0.1 * a  # nearly one value per patch: a flat, textureless set
    assert sliced_wasserstein(a, a) == 0.0
    assert sliced_wasserstein(a, b) == pytest.approx(sliced_wasserstein(b, a), rel=1e-12)
    assert sliced_wasserstein(a, b) > 0.3


def test_sets_of_different_sizes_are_refused():
    with pytest.raises(ValueError, match="same shape"):
        sliced_wasserstein(torch.zeros(10, 147), torch.zeros(11, 147))


def test_the_pyramid_adds_back_up_to_the_image_and_stops_at_16_pixels():
    assert pyramid_levels(128, 256) == 4 and pyramid_levels(32, 64) == 2 and pyramid_levels(8, 8) == 1
    image = _textures(3, n=1)
    bands = laplacian_pyramid(image, 3)
    assert [b.shape[-2:] for b in bands] == [(64, 128), (32, 64), (16, 32)]
    rebuilt = bands[-1]
    for band in reversed(bands[:-1]):
        rebuilt = F.interpolate(rebuilt, size=band.shape[-2:], mode="bilinear", align_corners=False) + band
    assert torch.allclose(rebuilt, image, atol=1e-5)


def test_samplers_with_one_seed_take_the_same_patches_and_select_by_frame():
    a, b = PatchSampler(32, 64, per_frame=4, seed=5), PatchSampler(32, 64, per_frame=4, seed=5)
    frames = _textures(4, n=3, h=32, w=64)
    for frame in frames:
        a.add(frame[None])
        b.add(frame[None])
    assert len(a) == 3 and all(torch.equal(x, y) for x, y in zip(a.descriptors(), b.descriptors()))
    last = a.descriptors(slice(2, None))
    assert [d.shape for d in last] == [(4, 147), (4, 147)]
