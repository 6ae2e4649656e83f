"""Image and video quality metrics: PSNR, SSIM, the warping error of Lai et al. (ECCV 2018), and the
temporal residual error against the real video. The sliced Wasserstein distance is in neural_render.swd.

All functions take torch tensors with images in [0, 1], shape (B, C, H, W), and need no pretrained
weights. ``neural_render.warp.warp`` is the only warp used (flow convention in ARCHITECTURE.md: backward
flow t -> t-1 in pixels). SSIM is differentiable, so training uses it as a loss term too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from neural_render.warp import warp


def psnr(output: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """(B,) peak signal-to-noise ratio in dB for images in [0, 1]: 10 log10(1 / MSE)."""
    mse = (output.float() - target.float()).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(eps))


def gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    """(size,) normalised 1-D Gaussian; SSIM's 11x11 window with sigma 1.5 is its outer product."""
    coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    # Separable Gaussian filter, "valid" region only (no padding), as in Wang et al.'s reference code.
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def ssim(
    output: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5, data_range: float = 1.0
) -> torch.Tensor:
    """(B,) mean structural similarity (Wang, Bovik, Sheikh, Simoncelli, IEEE TIP 2004, eq. 13).

    Gaussian-weighted local means, variances and covariance (11x11, sigma 1.5), constants
    C1 = (0.01 L)^2 and C2 = (0.03 L)^2, averaged over the valid region and the channels.
    Images smaller than the window use a window that fits.
    """
    x, y = output.float(), target.float()
    window = min(window, x.shape[-1], x.shape[-2])
    g = gaussian_window(window, sigma, x.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _blur(x, g), _blur(y, g)
    sxx = _blur(x * x, g) - mu_x**2
    syy = _blur(y * y, g) - mu_y**2
    sxy = _blur(x * y, g) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return (num / den).flatten(1).mean(1)


def occlusion_mask(
    flow: torch.Tensor,
    labels: torch.Tensor | None = None,
    prev_labels: torch.Tensor | None = None,
    depth: torch.Tensor | None = None,
    prev_depth: torch.Tensor | None = None,
    rel_tol: float = 0.1,
    abs_tol: float = 1.0,
) -> torch.Tensor:
    """(B, 1, H, W) float mask, 1 where pixel t is visible in frame t-1 (non-occluded), else 0.

    Tests, all with the exact engine flow (backward, t -> t-1):
    - the source point x + flow lies inside frame t-1 (no border clamping);
    - depth reprojection: the surface seen at x in frame t was at x + flow in t-1; if frame t-1's depth
      there is clearly nearer than this point's depth now, something else covered it (occluded).
      Points move at most a few metres per tick, hence the tolerance rel_tol * depth + abs_tol;
    - label consistency: the class at x + flow in t-1 equals the class at x (catches occluders of
      equal depth and is the only test when depth is unknown). Sampling the labels with the bilinear
      ``warp`` marks class boundaries as occluded, which errs on the safe side.
    labels (B, H, W) integer, depth (B, H, W) metres; any of them may be None.
    """
    b, _, h, w = flow.shape
    flow = flow.float()
    xs = torch.arange(w, device=flow.device, dtype=torch.float32).view(1, 1, w)
    ys = torch.arange(h, device=flow.device, dtype=torch.float32).view(1, h, 1)
    px, py = xs + flow[:, 0], ys + flow[:, 1]
    valid = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    if labels is not None and prev_labels is not None:
        pulled = warp(prev_labels.float().unsqueeze(1), flow)[:, 0]
        valid &= (pulled - labels.float()).abs() < 1e-3
    if depth is not None and prev_depth is not None:
        pulled = warp(prev_depth.float().unsqueeze(1), flow)[:, 0]
        d = depth.float()
        valid &= pulled >= d * (1.0 - rel_tol) - abs_tol
    return valid.float().unsqueeze(1)


def warping_error(
    current: torch.Tensor, previous: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """(B,) warping error E_warp of Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018.

    E = sum_x M(x) ||V_t(x) - warp(V_{t-1}, F)(x)||^2 / sum_x M(x): squared colour distance summed
    over channels, averaged over the non-occluded pixels M. Images in [0, 1]; flow t -> t-1 exact.
    """
    if mask is None:
        mask = torch.ones_like(current[:, :1])
    diff = (current.float() - warp(previous.float(), flow)).pow(2).sum(1, keepdim=True)
    return (diff * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1.0)


def temporal_residual_error(
    generated: torch.Tensor, generated_previous: torch.Tensor, real: torch.Tensor, real_previous: torch.Tensor,
    flow: torch.Tensor, mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B,) mean |(y_t - W(y_{t-1})) - (g_t - W(g_{t-1}))| over the non-occluded pixels M and channels.

    The residual y_t - W(y_{t-1}) is what changes in the real video once motion is undone by the exact
    flow (shading, specular light, disocclusion noise); a generated video should change the same way. A
    flickering video has residuals the real one lacks, and a frozen or blurred one lacks the real ones,
    so neither scores well: the warping error alone rewards the second. In the spirit of tOF and tLP of
    Chu et al., "Learning Temporal Coherence via Self-Supervision for GAN-based Video Generation"
    (TecoGAN), ACM TOG 2020, which also compare a generated video's motion to the real one's.
    """
    if mask is None:
        mask = torch.ones_like(generated[:, :1])
    real_residual = real.float() - warp(real_previous.float(), flow)
    generated_residual = generated.float() - warp(generated_previous.float(), flow)
    diff = (real_residual - generated_residual).abs().mean(1, keepdim=True)
    return (diff * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1.0)


def mean(values: list[float]) -> float:
    """Mean of a list, NaN when empty (a metric that had no frames to measure)."""
    return float(sum(values) / len(values)) if values else math.nan
