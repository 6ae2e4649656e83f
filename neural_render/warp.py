"""The one backward warp of the project (model, training losses, metrics all call this).

Flow convention (ARCHITECTURE.md): backward flow in pixels. For pixel (x, y) of frame t,
(x + flow[0, y, x], y + flow[1, y, x]) is where that surface point was in frame t-1, so
``warp(frame_{t-1}, flow)`` pulls frame t-1 into frame t's pixel grid. This is the
``W(x_{t-1}, w_t)`` operator of vid2vid (Wang et al., NeurIPS 2018, eq. 4).

Sampling: bilinear ``grid_sample`` with border padding and ``align_corners=True`` (pixel centres at
-1 and +1 map to the first and last pixel, so an integer flow is an exact integer shift). The grid is
built and kept in float32 even for fp16/bf16 images: at 2048 px a half-precision coordinate has a step
of ~1 px, which would blur and jitter the warp. The output keeps the dtype of ``image``.

Border padding means a sample beyond the edge reads the edge pixel: ``in_view`` says how much of each
sample lies inside the frame, so the generator can paint what a turn brings into view instead of
smearing the edge inward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def base_grid(height: int, width: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(1, 2, H, W) float32 pixel coordinates (x, y) of every pixel centre."""
    ys = torch.arange(height, dtype=torch.float32, device=device)
    xs = torch.arange(width, dtype=torch.float32, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy), dim=0).unsqueeze(0)


def sample_coords(flow: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) float32 pixel coordinates ``pixel + flow`` that :func:`warp` samples."""
    _, _, height, width = flow.shape
    return base_grid(height, width, flow.device) + flow.float()


def warp(image: torch.Tensor, flow: torch.Tensor, coords: torch.Tensor | None = None) -> torch.Tensor:
    """Sample ``image`` (B, C, H, W) at ``pixel + flow`` with ``flow`` (B, 2, H, W) in pixels.
    ``coords``: :func:`sample_coords` of ``flow`` when the caller already has them."""
    if image.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"warp: expected image (B,C,H,W) and flow (B,2,H,W), got {tuple(image.shape)} and {tuple(flow.shape)}")
    if image.shape[0] != flow.shape[0] or image.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"warp: image {tuple(image.shape)} and flow {tuple(flow.shape)} differ in batch or size")
    _, _, height, width = image.shape
    coords = sample_coords(flow) if coords is None else coords
    # Normalise to [-1, 1] for align_corners=True: -1 is the centre of pixel 0, +1 of pixel W-1.
    # max(.., 1) keeps a 1-pixel-wide image finite (every sample then reads that one pixel).
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], device=image.device).view(1, 2, 1, 1)
    grid = (coords * scale - 1.0).permute(0, 2, 3, 1)
    out = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.to(image.dtype)


def in_view(flow: torch.Tensor, coords: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 1, H, W) float32 weight in [0, 1]: how much of the bilinear sample at ``pixel + flow`` lies
    inside the previous frame. 1 inside, falling linearly to 0 over the one pixel beyond the edge, as
    bilinear taps leave the image. Where it is below 1, :func:`warp` reads border-replicated pixels:
    content that was not in view a frame ago (the side of the image on a turn), which must be painted
    anew rather than smeared in from the edge. ``coords`` as for :func:`warp`."""
    _, _, height, width = flow.shape
    coords = sample_coords(flow) if coords is None else coords
    x, y = coords[:, :1], coords[:, 1:]
    wx = torch.minimum(x + 1.0, width - x).clamp(0.0, 1.0)
    wy = torch.minimum(y + 1.0, height - y).clamp(0.0, 1.0)
    return wx * wy
