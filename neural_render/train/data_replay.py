"""Training clips from recorded sessions (``carla_bridge.session.ReplaySource``) that carry the engine rgb.

``--data-path`` is one session (a folder or an .mcap file) or a folder of them. Sessions recorded without rgb
are skipped with a printed reason; if none is left, a ValueError says how to record with rgb.
Sessions are read sequentially (``ReplaySource.step``), so this is an IterableDataset: each worker
(and each DDP rank) walks its own share of the sessions, in a loop, and cuts them into consecutive
non-overlapping clips; a recording cut (respawn) ends a clip early so no clip spans a camera jump.
A resumed run (``start_step``) skips the clips each worker gave before that step, and each clip's
augmentation is seeded by its number, so a resume trains on the clips an uninterrupted run would have
(not again on the first clips of every session).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from carla_bridge.core.frames import Control
from carla_bridge.session import ReplaySource, SessionEnded
from carla_bridge.session.format import MCAP_SUFFIX
from neural_render.train.augment import AugmentConfig, augment_clip
from neural_render.train.clip import Clip, frames_to_clip
from neural_render.train.splits import mix


def find_sessions(root: str | Path) -> list[Path]:
    """Sessions at or one level below ``root``, sorted: folders holding session.json and .mcap files."""
    root = Path(root)
    if root.is_file() and root.suffix.lower() == MCAP_SUFFIX:
        return [root]
    if not root.is_dir():
        raise ValueError(f"--data-path {root} is not a folder (give a session folder, a folder of sessions "
                         f"or a {MCAP_SUFFIX} file)")
    if (root / "session.json").is_file():
        return [root]
    found = sorted([p.parent for p in root.glob("*/session.json")] + list(root.glob(f"*{MCAP_SUFFIX}")))
    if not found:
        raise ValueError(f"--data-path {root}: no session folders (with session.json) nor {MCAP_SUFFIX} files "
                         "found there or one level below")
    return found


def sessions_with_rgb(paths: list[Path], speak: bool = True) -> list[Path]:
    """Keep sessions whose first frame has rgb; print why each other one is skipped (``speak``: rank 0
    of a torchrun run says it, not every rank)."""
    keep = []
    for path in paths:
        try:
            with ReplaySource(path) as source:
                frame = source.step(Control())
        except Exception as exc:  # noqa: BLE001 - a broken session must not stop training on the others
            if speak:
                print(f"[train] skipping session {path}: {exc}")
            continue
        if frame.rgb is None:
            if speak:
                print(f"[train] skipping session {path}: it has no rgb (recorded without --record-rgb)")
            continue
        keep.append(path)
    if not keep:
        raise ValueError(
            "no usable session with rgb: training needs the engine image as the target; "
            "record them with `python launch.py --record DIR --record-rgb`"
        )
    return keep


class ReplayClips(IterableDataset):
    def __init__(
        self, root: str | Path, width: int, height: int, length: int, base_seed: int, augment: AugmentConfig,
        rank: int = 0, world_size: int = 1, start_step: int = 0, batch: int = 1,
    ) -> None:
        self.sessions = sessions_with_rgb(find_sessions(root), speak=rank == 0)
        self.width, self.height, self.length = width, height, length
        self.base_seed, self.augment = base_seed, augment
        self.rank, self.world_size = rank, world_size
        self.start_step, self.batch = start_step, batch

    def __iter__(self):
        info = get_worker_info()
        if info is not None:
            torch.set_num_threads(1)
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        # The DataLoader takes step s's batch from worker s % workers, and a resumed loader starts at
        # worker 0: worker w plays the part of worker (w + start_step) % workers of the first run.
        role = (worker + self.start_step) % workers
        slot, slots = self.rank * workers + role, self.world_size * workers
        mine = [p for i, p in enumerate(self.sessions) if i % slots == slot % len(self.sessions)] or self.sessions
        skip = max(0, -(-(self.start_step - role) // workers)) * self.batch  # clips of the steps before
        for number, clip in enumerate(self._clips(mine)):
            if number >= skip:
                yield self._finish(clip, np.random.default_rng(mix(self.base_seed, slot, 2, number)))

    def _clips(self, mine: list[Path]):
        """The frame lists of consecutive clips of ``mine``, looping over the sessions forever."""
        while True:
            for path in mine:
                with ReplaySource(path) as source:
                    frames = []
                    while True:
                        try:
                            frame = source.step(Control())
                        except SessionEnded:
                            break
                        if frame.cut or frame.rgb is None:
                            frames = []
                        if frame.rgb is None:
                            continue
                        frames.append(frame)
                        if len(frames) == self.length:
                            yield frames
                            frames = []

    def _finish(self, frames: list, rng: np.random.Generator) -> Clip:
        return augment_clip(frames_to_clip(frames), self.width, self.height, rng, self.augment)
