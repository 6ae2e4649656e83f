"""Loss terms of vid2vid training (Wang et al., NeurIPS 2018; weights after NVlabs imaginaire's
vid2vid configs). Each function returns a scalar tensor; the trainer weighs and sums them.

Images are in [-1, 1] unless said otherwise. Masks are (B, 1, H, W) in {0, 1}.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from neural_render.metrics import ssim
from neural_render.warp import warp


def gan_d_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]], mode: str = "hinge") -> torch.Tensor:
    """Discriminator loss averaged over scales: hinge (Lim & Ye 2017, as imaginaire's gan_mode: hinge)
    E[relu(1 - D(real))] + E[relu(1 + D(fake))], or least squares (Mao et al. 2017)."""
    total = 0.0
    for r, f in zip(real, fake):
        r, f = r[-1].float(), f[-1].float()
        if mode == "hinge":
            total = total + F.relu(1 - r).mean() + F.relu(1 + f).mean()
        else:
            total = total + (r - 1).pow(2).mean() + f.pow(2).mean()
    return total / len(real)


def gan_g_loss(fake: list[list[torch.Tensor]], mode: str = "hinge") -> torch.Tensor:
    """Generator adversarial loss: -E[D(fake)] for hinge, E[(D(fake) - 1)^2] for least squares."""
    total = 0.0
    for f in fake:
        f = f[-1].float()
        total = total + (-f.mean() if mode == "hinge" else (f - 1).pow(2).mean())
    return total / len(fake)


def feature_matching(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """GAN feature matching (pix2pixHD eq. 4): L1 between D's intermediate features of real and fake,
    averaged over layers and scales; real features are constants."""
    total, count = 0.0, 0
    for r_feats, f_feats in zip(real, fake):
        for r, f in zip(r_feats[:-1], f_feats[:-1]):
            total = total + F.l1_loss(f.float(), r.detach().float())
            count += 1
    return total / max(count, 1)


def masked_l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |a - b| over the pixels where mask is 1 (channels averaged); 0 when the mask is empty."""
    diff = (a.float() - b.float()).abs().mean(1, keepdim=True)
    return (diff * mask).sum() / mask.sum().clamp_min(1.0)


def reconstruction(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L1 to the target frame: the strong, stable signal that makes a usable model in minutes."""
    return F.l1_loss(fake.float(), real.float())


def ssim_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """1 - SSIM (Wang et al. 2004) on [0, 1] images: rewards local structure and contrast L1 blurs."""
    return 1.0 - ssim((fake.float() + 1) / 2, (real.float() + 1) / 2).mean()


def flow_l1(pred_flow: torch.Tensor, engine_flow: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """vid2vid's flow loss, |w_t - w~_t|_1, against the engine's exact flow (where it is known and the
    pixel is not occluded) instead of FlowNet2 estimates."""
    return masked_l1(pred_flow, engine_flow, valid)


def flow_warp(pred_flow: torch.Tensor, real_prev: torch.Tensor, real: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """vid2vid's flow warp loss |warp(x_{t-1}, w~_t) - x_t|_1: the predicted flow must carry the real
    previous frame onto the real current one."""
    return masked_l1(warp(real_prev.float(), pred_flow), real, valid)


def mask_loss(mask: torch.Tensor, warped_prev: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Occlusion-mask loss (imaginaire's FlowLoss.compute_mask_loss): where the warped previous output
    already matches the target (confidence c = clamp(1 - sum_c |warp - x|, 0, 1)), the mask should pick
    it (m -> 1 here; our m weighs the warped frame); elsewhere it should pick the hallucination (m -> 0)."""
    conf = (1 - (warped_prev.float() - real.float()).abs().sum(1, keepdim=True)).clamp(0, 1).detach()
    m = mask.float()
    return ((1 - m) * conf).mean() + (m * (1 - conf)).mean()


def temporal_warp(fake: torch.Tensor, fake_prev: torch.Tensor, engine_flow: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Short-term temporal loss (the warping error of Lai et al., ECCV 2018, as a loss): the output
    should equal the previous output moved by the exact flow on non-occluded pixels."""
    return masked_l1(fake, warp(fake_prev.detach().float(), engine_flow), valid)
