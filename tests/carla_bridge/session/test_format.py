"""The session format's encodings: the render digest and the grey PNG of a label map."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from carla_bridge.core.png import encode_png
from carla_bridge.session import digest_thumb, render_digest


def test_render_digest_thumbnail():
    image = np.zeros((48, 96, 3), np.uint8)
    image[:, 48:] = 200
    digest = render_digest(image)
    thumb = digest_thumb(digest)
    assert thumb.shape == (8, 16, 3) and thumb[:, :8].max() == 0 and thumb[:, 8:].min() == 200
    assert render_digest(image) == digest and render_digest(image + 1)["sha256"] != digest["sha256"]


@pytest.mark.parametrize("shape", [(48, 96), (7, 13), (1, 1)])
def test_grey_png_encoder_round_trips(tmp_path, shape):
    labels = np.random.default_rng(1).integers(0, 29, shape, dtype=np.uint8)
    (tmp_path / "l.png").write_bytes(encode_png(labels))
    with Image.open(tmp_path / "l.png") as image:
        assert image.mode == "L" and np.array_equal(np.asarray(image), labels)
