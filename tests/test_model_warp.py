"""warp(): integer shifts are exact, borders clamp, fp16 images keep their dtype with a float32 grid."""

import torch

from neural_render.warp import warp


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
