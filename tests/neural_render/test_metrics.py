"""Known answers of the metrics (neural_render/metrics.py) on synthetic inputs."""

import math

import pytest
import torch

from neural_render.metrics import occlusion_mask, psnr, ssim, temporal_residual_error, warping_error


def _image(seed: int = 0, h: int = 24, w: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g)


def test_psnr_of_known_noise():
    target = torch.full((1, 3, 16, 16), 0.5)
    noise = torch.where(torch.arange(16 * 16).view(1, 1, 16, 16) % 2 == 0, 0.1, -0.1).expand(1, 3, 16, 16)
    # MSE = 0.1^2 = 0.01 exactly -> PSNR = 10 log10(1 / 0.01) = 20 dB
    assert float(psnr(target + noise, target)) == pytest.approx(20.0, abs=1e-4)


def test_ssim_identical_is_one_and_noise_lowers_it():
    x = _image()
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-6)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert float(ssim(noisy, x)) < 0.9


def test_ssim_of_constant_images_matches_closed_form():
    # Zero variance everywhere: SSIM = (2ab + C1) / (a^2 + b^2 + C1) (the contrast-structure term is 1).
    a, b, c1 = 0.3, 0.6, 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    got = float(ssim(torch.full((1, 3, 20, 20), a), torch.full((1, 3, 20, 20), b)))
    assert got == pytest.approx(expected, rel=1e-5)


def test_identical_frames_have_zero_warping_error():
    x = _image()
    assert float(warping_error(x, x, torch.zeros(1, 2, 24, 32))) < 1e-10  # grid_sample rounding only


def test_constant_colour_change_gives_known_warping_error():
    x = _image()
    # ||0.1 * (1, 1, 1)||^2 = 0.03 at every pixel
    assert float(warping_error(x + 0.1, x, torch.zeros(1, 2, 24, 32))) == pytest.approx(0.03, rel=1e-5)


def test_known_shift_is_undone_by_the_exact_flow():
    prev = _image(2)
    shift = 3
    cur = torch.roll(prev, shifts=-shift, dims=3)  # cur(x) = prev(x + 3): content moved 3 px left
    flow = torch.zeros(1, 2, 24, 32)
    flow[:, 0] = shift  # backward flow: pixel x of cur was at x + 3 in prev
    mask = occlusion_mask(flow)
    assert float(mask[..., : 32 - shift].min()) == 1.0 and float(mask[..., 32 - shift :].max()) == 0.0
    assert float(warping_error(cur, prev, flow, mask)) == pytest.approx(0.0, abs=1e-10)
    assert float(warping_error(cur, prev, torch.zeros_like(flow), mask)) > 0.05


def test_depth_and_labels_mark_occlusions():
    flow = torch.zeros(1, 2, 8, 8)
    depth = torch.full((1, 8, 8), 20.0)
    prev_depth = depth.clone()
    prev_depth[:, 2:4, 2:4] = 5.0  # something nearer covered these pixels in the previous frame
    labels = torch.ones(1, 8, 8, dtype=torch.uint8)
    prev_labels = labels.clone()
    prev_labels[:, 6, 6] = 14
    mask = occlusion_mask(flow, labels, prev_labels, depth, prev_depth)[0, 0]
    assert mask[2:4, 2:4].sum() == 0 and mask[6, 6] == 0
    assert mask.sum() == 64 - 4 - 1
    assert not math.isnan(float(mask.mean()))


def test_flickering_and_frozen_copies_score_worse_temporal_residuals_than_the_real_video():
    """A real video panning 2 px a frame; the exact backward flow undoes the pan. The real video
    against itself is 0, as is a copy with a constant colour shift (steady, only biased); a copy with
    new noise every frame (flicker) and a copy stuck at its first frame (frozen) both are not."""
    base = _image(5, w=64)
    video = [torch.roll(base, shifts=-2 * t, dims=3) for t in range(4)]
    flow = torch.zeros(1, 2, 24, 64)
    flow[:, 0] = 2.0
    mask = occlusion_mask(flow)
    noise = torch.Generator().manual_seed(6)
    copies = {
        "real": video,
        "biased": [(frame * 0.8 + 0.1) for frame in video],
        "flickering": [(frame + 0.05 * torch.randn(frame.shape, generator=noise)).clamp(0, 1) for frame in video],
        "frozen": [video[0]] * 4,
    }

    def score(copy):
        return sum(float(temporal_residual_error(copy[t], copy[t - 1], video[t], video[t - 1], flow, mask))
                   for t in range(1, 4)) / 3

    scores = {name: score(copy) for name, copy in copies.items()}
    assert scores["real"] < 1e-6 and scores["biased"] < 0.05 * scores["flickering"], scores
    assert scores["flickering"] > 0.02 and scores["frozen"] > 0.02, scores
