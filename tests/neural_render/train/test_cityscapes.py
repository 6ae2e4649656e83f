"""Cityscapes-format video loader on a tiny synthetic folder (neural_render/train/data_cityscapes.py)."""

import numpy as np
import pytest
from PIL import Image

from carla_bridge.core.labels import TAG
from neural_render.train.augment import AugmentConfig
from neural_render.train.data_cityscapes import CITYSCAPES_TO_TAG, CityscapesClips, find_videos

NO_AUG = AugmentConfig(flip_p=0.0, crop_scale_max=1.0, label_noise_p=0.0)


def _write_dataset(root, frames=(3, 4, 5, 6), size=(64, 32), label_mode="L"):
    w, h = size
    for city, seq in (("aachen", 0), ("bremen", 7)):
        img_dir = root / "leftImg8bit_sequence" / "train" / city
        lab_dir = root / "gtFine_sequence" / "train" / city
        img_dir.mkdir(parents=True, exist_ok=True)
        lab_dir.mkdir(parents=True, exist_ok=True)
        for f in frames:
            stem = f"{city}_{seq:06d}_{f:06d}"
            rgb = np.full((h, w, 3), 10 * f, np.uint8)
            Image.fromarray(rgb).save(img_dir / f"{stem}_leftImg8bit.png")
            ids = np.full((h, w), 7, np.uint8)  # road
            ids[:, w // 2 :] = 26  # car
            ids[:4] = 23  # sky
            image = Image.fromarray(ids) if label_mode == "L" else Image.fromarray(np.stack([ids] * 3, -1))
            image.save(lab_dir / f"{stem}_gtFine_labelIds.png")


def test_loader_reads_clips_and_maps_labels(tmp_path):
    _write_dataset(tmp_path)
    videos = find_videos(tmp_path)
    assert len(videos) == 2 and all(len(v) == 4 for v in videos)
    ds = CityscapesClips(tmp_path, 32, 16, lambda i: 3, base_seed=0, augment=NO_AUG)
    clip = ds[5]
    assert clip["labels"].shape == (3, 16, 32) and clip["rgb"].shape == (3, 3, 16, 32)
    assert clip["has_flow"].sum() == 0 and clip["has_depth"].sum() == 0
    tags = set(np.unique(clip["labels"].numpy()).tolist())
    assert tags == {TAG["Roads"], TAG["Car"], TAG["Sky"]}
    # consecutive frames of one video: the synthetic brightness grows by 10 per frame
    means = clip["rgb"].float().mean(dim=(1, 2, 3))
    assert torch_close(means[1] - means[0], 10.0)


def torch_close(a, b):
    return abs(float(a) - b) < 1e-3


def test_table_maps_every_cityscapes_id_to_a_known_tag():
    assert set(CITYSCAPES_TO_TAG) == set(range(34))
    assert CITYSCAPES_TO_TAG[7] == TAG["Roads"] and CITYSCAPES_TO_TAG[24] == TAG["Pedestrians"]


def test_gaps_in_frame_numbers_split_videos(tmp_path):
    _write_dataset(tmp_path, frames=(1, 2, 3, 10, 11))
    lengths = sorted(len(v) for v in find_videos(tmp_path))
    assert lengths == [2, 2, 3, 3]


def test_wrong_layout_fails_clearly(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match="leftImg8bit_sequence"):
        find_videos(tmp_path)


def test_colour_labels_fail_clearly(tmp_path):
    _write_dataset(tmp_path, label_mode="RGB")
    ds = CityscapesClips(tmp_path, 32, 16, lambda i: 2, base_seed=0, augment=NO_AUG)
    with pytest.raises(ValueError, match="single-channel labelIds"):
        ds[0]


def test_missing_label_file_fails_clearly(tmp_path):
    _write_dataset(tmp_path)
    next((tmp_path / "gtFine_sequence").rglob("*.png")).unlink()
    with pytest.raises(ValueError, match="has no label PNG"):
        find_videos(tmp_path)
