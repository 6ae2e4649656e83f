"""carla_bridge.core.png: what it encodes decodes to the same pixels, and a failed write leaves nothing."""

import os

import numpy as np
import pytest
from PIL import Image

from carla_bridge.core.png import encode_png, write_png


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 3)])
def test_a_png_decodes_to_the_pixels_encoded(tmp_path, shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = write_png(tmp_path / "image.png", image)
    with Image.open(path) as decoded:
        assert decoded.mode == ("L" if len(shape) == 2 else "RGB")
        assert np.array_equal(np.asarray(decoded), image)
    assert encode_png(image, level=1) != path.read_bytes()  # the level reaches zlib (6 is write_png's)


@pytest.mark.parametrize("image", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 4), np.uint8)])
def test_only_grey_and_rgb_bytes_are_encoded(image):
    with pytest.raises(ValueError, match=r"an \(H, W\) or \(H, W, 3\) uint8 image"):
        encode_png(image)


def test_a_failed_png_write_leaves_no_temporary_file(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(OSError):
        write_png(tmp_path / "folder", np.zeros((2, 2, 3), np.uint8))
    assert os.listdir(tmp_path) == ["folder"] and os.listdir(tmp_path / "folder") == []
