"""Training clips from Cityscapes-format video folders, labelIds mapped to CARLA tags by ONE table.

Expected layout (``--data-path ROOT``; the split is ``train`` unless told otherwise):

    ROOT/leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png   RGB frames
    ROOT/gtFine_sequence/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png     one label PNG per frame

<seq> and <frame> are the zero-padded numbers of Cityscapes' own names (e.g. aachen_000000_000019).
Each label PNG is single-channel 8-bit Cityscapes **labelIds** (0..33; 255 = unlabeled), the format
of cityscapesScripts' ``*_gtFine_labelIds.png``; Cityscapes ships such labels for one frame in 30, so
per-frame labels for the sequences come from a segmentation network, as vid2vid did. Frames with the
same <city>_<seq> and consecutive <frame> numbers form a video. Colour label images (``*_color.png``)
or any other layout raise ValueError saying what was found and what is expected. Cityscapes has no
engine flow or depth: has_flow and has_depth are 0 and the flow/warp losses skip these clips.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from carla_bridge.core.weather import CLEAR_NOON
from neural_render.train.augment import AugmentConfig, augment_clip
from neural_render.train.clip import Clip
from neural_render.train.splits import mix

IMAGE_DIR, LABEL_DIR = "leftImg8bit_sequence", "gtFine_sequence"
IMAGE_SUFFIX, LABEL_SUFFIX = "_leftImg8bit.png", "_gtFine_labelIds.png"
_NAME = re.compile(r"^(?P<city>[a-z_]+)_(?P<seq>\d+)_(?P<frame>\d+)" + re.escape(IMAGE_SUFFIX) + "$")

# Cityscapes labelId -> CARLA 0.9.14+ semantic tag (carla_bridge.core.labels), the one table. Ids CARLA has no
# class for go to the nearest one: parking -> Roads, tunnel -> Buildings, polegroup -> Poles,
# caravan/trailer -> Truck, license plate (-1, stored as 255 in some exports) -> Unlabeled.
CITYSCAPES_TO_TAG: dict[int, int] = {
    0: 0, 1: 0, 2: 0, 3: 0,  # unlabeled, ego vehicle, rectification border, out of roi
    4: 20, 5: 21, 6: 25,  # static, dynamic, ground
    7: 1, 8: 2, 9: 1, 10: 27,  # road, sidewalk, parking, rail track
    11: 3, 12: 4, 13: 5, 14: 28, 15: 26, 16: 3,  # building, wall, fence, guard rail, bridge, tunnel
    17: 6, 18: 6, 19: 7, 20: 8,  # pole, polegroup, traffic light, traffic sign
    21: 9, 22: 10, 23: 11,  # vegetation, terrain, sky
    24: 12, 25: 13, 26: 14, 27: 15, 28: 16, 29: 15, 30: 15, 31: 17, 32: 18, 33: 19,  # person .. bicycle
}
LOOKUP = np.zeros(256, dtype=np.uint8)
for _cs, _tag in CITYSCAPES_TO_TAG.items():
    LOOKUP[_cs] = _tag


def _read_png(path: Path) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading Cityscapes PNGs needs Pillow: pip install pillow") from None
    with Image.open(path) as image:
        return np.asarray(image)


def find_videos(root: str | Path, split: str = "train") -> list[list[tuple[Path, Path]]]:
    """Group frames into videos: lists of (image, label) paths, consecutive frame numbers each."""
    root = Path(root)
    image_root, label_root = root / IMAGE_DIR / split, root / LABEL_DIR / split
    expected = f"{root}/{IMAGE_DIR}/{split}/<city>/<city>_<seq>_<frame>{IMAGE_SUFFIX} with labels in {LABEL_DIR}/"
    if not image_root.is_dir():
        found = sorted(p.name for p in root.iterdir())[:8] if root.is_dir() else "nothing (no such folder)"
        raise ValueError(f"--data-path {root} is not a Cityscapes-format video folder: expected {expected}; found {found}")
    groups: dict[tuple[str, str], list[tuple[int, Path, Path]]] = {}
    for image in sorted(image_root.glob(f"*/*{IMAGE_SUFFIX}")):
        match = _NAME.match(image.name)
        if not match:
            raise ValueError(f"{image}: name does not look like <city>_<seq>_<frame>{IMAGE_SUFFIX}")
        label = label_root / image.parent.name / image.name.replace(IMAGE_SUFFIX, LABEL_SUFFIX)
        if not label.is_file():
            raise ValueError(f"{image} has no label PNG: expected {label} (labelIds, one per frame)")
        key = (match["city"], match["seq"])
        groups.setdefault(key, []).append((int(match["frame"]), image, label))
    if not groups:
        raise ValueError(f"--data-path {root}: no frames found; expected {expected}")
    videos = []
    for entries in groups.values():
        entries.sort()
        run = [entries[0]]
        for entry in entries[1:]:  # split where frame numbers jump: those frames are not consecutive
            if entry[0] != run[-1][0] + 1:
                videos.append([(i, l) for _, i, l in run])
                run = []
            run.append(entry)
        videos.append([(i, l) for _, i, l in run])
    return videos


def load_labels(path: Path) -> np.ndarray:
    raw = _read_png(path)
    if raw.ndim != 2:
        raise ValueError(
            f"{path}: expected a single-channel labelIds PNG, got shape {raw.shape} "
            f"(a colour *_color.png? use the *{LABEL_SUFFIX} files)"
        )
    if raw.dtype != np.uint8:
        raw = raw.astype(np.int64)
        if raw.max() > 255 or raw.min() < 0:
            raise ValueError(f"{path}: label ids {raw.min()}..{raw.max()} are not Cityscapes labelIds (0..33)")
        raw = raw.astype(np.uint8)
    return LOOKUP[raw]


class CityscapesClips(Dataset):
    """Map-style dataset: sample i picks a video and start frame from mix(base_seed, i)."""

    def __init__(
        self, root: str | Path, width: int, height: int, length_fn, base_seed: int, augment: AugmentConfig,
        split: str = "train",
    ) -> None:
        self.videos = find_videos(root, split)
        self.width, self.height = width, height
        self.length_fn = length_fn  # sample index -> clip length (the progressive schedule)
        self.base_seed, self.augment = base_seed, augment

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> Clip:
        if get_worker_info() is not None:
            torch.set_num_threads(1)  # workers are processes: one thread each, or they fight the trainer
        rng = np.random.default_rng(mix(self.base_seed, index, 3))
        want = self.length_fn(index)
        video = self.videos[int(rng.integers(len(self.videos)))]
        length = min(want, len(video))
        start = int(rng.integers(0, len(video) - length + 1))
        frames = video[start : start + length]
        while len(frames) < want:  # a short video repeats its last frame; no flow is claimed anyway
            frames.append(frames[-1])
        rgb = [_read_png(image)[..., :3] for image, _ in frames]
        labels = [load_labels(label) for _, label in frames]
        h, w = labels[0].shape
        if rgb[0].shape[:2] != (h, w):
            raise ValueError(f"{frames[0][0]}: image {rgb[0].shape[:2]} and label {(h, w)} sizes differ")
        clip = {
            "labels": torch.from_numpy(np.stack(labels)),
            "rgb": torch.from_numpy(np.stack(rgb).transpose(0, 3, 1, 2).copy()),
            "flow": torch.zeros(want, 2, h, w),
            "has_flow": torch.zeros(want),
            "depth": torch.zeros(want, h, w),
            "has_depth": torch.zeros(want),
            "weather": torch.from_numpy(CLEAR_NOON).expand(want, -1).clone(),  # daytime photos, weather unknown
        }
        return augment_clip(clip, self.width, self.height, rng, self.augment)
