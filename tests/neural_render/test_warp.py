"""warp(): integer shifts are exact, borders clamp, fp16 images keep their dtype with a float32 grid;
in_view(): the share of each bilinear sample inside the previous frame."""

import torch

from neural_render.warp import in_view, warp


def _image(h=6, w=8, c=3):
    return torch.arange(c * h * w, dtype=torch.float32).reshape(1, c, h, w)


def test_zero_flow_is_identity():
    img = torch.rand(2, 3, 5, 7)
    torch.testing.assert_close(warp(img, torch.zeros(2, 2, 5, 7)), img)


def test_integer_shift_x():
    img = _image()
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 0] = 2.0  # pixel x of frame t was at x + 2 in frame t-1
    out = warp(img, flow)
    torch.testing.assert_close(out[..., :6], img[..., 2:])
    # Border padding: samples past the right edge read the last column.
    torch.testing.assert_close(out[..., 6:], img[..., 7:8].expand(-1, -1, -1, 2))


def test_integer_shift_negative_y():
    img = _image()
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 1] = -1.0
    out = warp(img, flow)
    torch.testing.assert_close(out[:, :, 1:], img[:, :, :-1])
    torch.testing.assert_close(out[:, :, 0], img[:, :, 0])


def test_half_pixel_is_bilinear():
    img = _image()
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 0] = 0.5
    out = warp(img, flow)
    torch.testing.assert_close(out[..., :7], (img[..., :7] + img[..., 1:]) / 2)


def test_fp16_image_keeps_dtype():
    img = _image().half()
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 0] = 1.0
    out = warp(img, flow)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out[..., :7].float(), img[..., 1:].float())


def test_bad_shapes():
    import pytest
    with pytest.raises(ValueError):
        warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError):
        warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 5))


def test_in_view_is_one_inside_and_ramps_to_zero_one_pixel_past_the_edge():
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 0] = 2.5  # columns 5.5 -> 7.5 .. 9.5: col 5 lands on 7.5 (half a tap beyond the last pixel)
    weight = in_view(flow)
    assert weight.shape == (1, 1, 6, 8)
    torch.testing.assert_close(weight[..., :5], torch.ones(1, 1, 6, 5))
    torch.testing.assert_close(weight[0, 0, 0, 5:], torch.tensor([0.5, 0.0, 0.0]))
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 1] = -0.25  # a quarter pixel above row 0: three quarters of the sample still inside
    torch.testing.assert_close(in_view(flow)[0, 0, :2, 0], torch.tensor([0.75, 1.0]))


def test_in_view_matches_how_much_a_zero_padded_warp_keeps():
    """Bilinear sampling of an all-ones image with zero padding keeps exactly the in-view share."""
    import torch.nn.functional as F
    flow = torch.randn(2, 2, 6, 8) * 4
    coords = torch.stack(torch.meshgrid(torch.arange(6.0), torch.arange(8.0), indexing="ij")[::-1]) + flow
    grid = (coords * torch.tensor([2 / 7, 2 / 5]).view(1, 2, 1, 1) - 1).permute(0, 2, 3, 1)
    kept = F.grid_sample(torch.ones(2, 1, 6, 8), grid, padding_mode="zeros", align_corners=True)
    torch.testing.assert_close(in_view(flow), kept, atol=1e-5, rtol=0)
