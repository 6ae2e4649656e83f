"""neural_render.train.png: the PNG writer of sample strips writes whole files or none."""

import os

import numpy as np
import pytest

import neural_render.train.png as png


def test_a_failed_png_write_leaves_no_temporary_file(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(OSError):
        png.write_png(tmp_path / "folder", np.zeros((2, 2, 3), np.uint8))
    assert os.listdir(tmp_path) == ["folder"] and os.listdir(tmp_path / "folder") == []
