"""Loss terms and discriminators (neural_render/train/losses.py, discriminators.py, vgg.py)."""

import pytest
import torch
from safetensors.torch import save_file

from neural_render.train import losses as L
from neural_render.train.discriminators import ImageDiscriminator, TemporalDiscriminator
from neural_render.train.vgg import VGGLoss, _features


def test_hinge_losses_known_values():
    real = [[torch.full((1, 1, 4, 4), 2.0)]]
    fake = [[torch.full((1, 1, 4, 4), -0.5)]]
    # relu(1 - 2) + relu(1 - 0.5) = 0.5 ; generator: -(-0.5) = 0.5
    assert float(L.gan_d_loss(real, fake)) == pytest.approx(0.5)
    assert float(L.gan_g_loss(fake)) == pytest.approx(0.5)
    assert float(L.gan_d_loss(real, fake, "lsgan")) == pytest.approx(1.0 + 0.25)


def test_discriminators_score_shapes_and_feature_matching():
    d_img = ImageDiscriminator(filters=8, layers=2, scales=2)
    labels = torch.randint(0, 29, (2, 32, 64))
    image = torch.rand(2, 3, 32, 64) * 2 - 1
    with torch.no_grad():
        scores = d_img.score(labels, image)
    assert len(scores) == 2 and scores[0][-1].shape[1] == 1
    assert float(L.feature_matching(scores, scores)) == 0.0
    d_tmp = TemporalDiscriminator(k=3, filters=8, layers=2, scales=1)
    out = d_tmp.score(torch.rand(2, 3, 3, 32, 64), torch.randn(2, 2, 2, 32, 64))
    assert out[0][-1].dim() == 4


def test_mask_loss_prefers_warp_where_it_matches():
    real = torch.zeros(1, 3, 8, 8)
    warped = real.clone()
    warped[..., 4:] = 1.0  # right half of the warped previous frame is wrong
    good = torch.zeros(1, 1, 8, 8)
    good[..., :4] = 1.0  # mask picks the warp on the left only
    assert float(L.mask_loss(good, warped, real)) == pytest.approx(0.0)
    assert float(L.mask_loss(1 - good, warped, real)) == pytest.approx(1.0)


def test_temporal_warp_zero_for_consistent_video():
    prev = torch.rand(1, 3, 8, 8)
    valid = torch.ones(1, 1, 8, 8)
    assert float(L.temporal_warp(prev, prev, torch.zeros(1, 2, 8, 8), valid)) < 1e-6


def test_vgg_loss_from_local_file_only(tmp_path):
    path = tmp_path / "vgg19.safetensors"
    save_file({f"features.{k}": v.contiguous() for k, v in _features().state_dict().items()}, str(path))
    loss = VGGLoss(path)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert float(loss(x, x)) == 0.0 and float(loss(x, -x)) > 0
    with pytest.raises(ValueError, match="no such file"):
        VGGLoss(tmp_path / "missing.safetensors")
