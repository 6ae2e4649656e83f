"""On-the-fly training clips from the procedural world (``carla_bridge.procedural``), made by CPU worker processes.

Sample ``i`` is a pure function of (base seed, i): its world seed (always a training seed, see
``splits``), warm-up length, weather and augmentation all come from ``mix(base_seed, i)``, so a resumed
run sees exactly the clips an uninterrupted run would have seen, whatever the number of workers.
Every DataLoader worker keeps one ``ProceduralWorld`` and re-seeds it per clip with ``reset(seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from carla_bridge.core.frames import Control
from neural_render.train.augment import AugmentConfig, augment_clip
from neural_render.train.clip import Clip, frames_to_clip
from neural_render.train.splits import mix, train_seed


@dataclass
class SequenceSchedule:
    """Progressive clip length (vid2vid, Wang et al. 2018, sec. 3.2: train on short clips first, then
    double the length): ``min_len`` frames at first, doubled every ``double_every`` steps up to ``max_len``."""

    min_len: int = 2
    max_len: int = 8
    double_every: int = 1000

    def length(self, step: int) -> int:
        if self.double_every <= 0:
            return self.max_len
        doublings = min(step // self.double_every, 16)
        return int(min(self.max_len, self.min_len * 2**doublings))


class ProceduralClips(Dataset):
    """Map-style dataset: ``dataset[i]`` is the clip of global sample i (see StepSampler)."""

    def __init__(
        self,
        width: int,
        height: int,
        base_seed: int,
        schedule: SequenceSchedule,
        samples_per_step: int,
        augment: AugmentConfig,
        warmup_max: int = 20,
        weather: str = "default",
    ) -> None:
        self.width, self.height = width, height
        self.base_seed = base_seed
        self.schedule = schedule
        self.samples_per_step = samples_per_step
        self.augment = augment
        self.warmup_max = warmup_max
        # "default": the world's default preset (what evaluate and the game show first); "all": a random
        # preset per clip, each frame carrying its weather vector, which the trainer then feeds to a
        # generator built with weather_dim (Trainer); "N": preset N.
        self.weather = weather
        self._world = None  # created lazily inside each worker process

    def __len__(self) -> int:
        return 2**62

    def _get_world(self, seed: int):
        if self._world is None:
            # Imported here, in the worker: it loads numba, whose pool is sized when it loads (the trainer
            # asks for one thread first, prefer_one_numba_thread), and the trainer itself renders nothing.
            from carla_bridge.procedural import ProceduralWorld, WorldConfig

            # One numba thread per world: the parallelism is across worker processes.
            self._world = ProceduralWorld(WorldConfig(width=self.width, height=self.height, seed=seed, threads=1))
        return self._world

    def __getitem__(self, index: int) -> Clip:
        if get_worker_info() is not None:
            torch.set_num_threads(1)  # workers are processes: one thread each, or they fight the trainer
        rng = np.random.default_rng(mix(self.base_seed, index, 1))
        length = self.schedule.length(index // self.samples_per_step)
        seed = train_seed(self.base_seed, index)
        world = self._get_world(seed)
        choice = rng.integers(len(world.weather_names))  # drawn always: the rng stream stays the same
        if self.weather == "all":
            world.set_weather(int(choice))
        elif self.weather != "default":
            world.set_weather(int(self.weather))
        frame = world.reset(seed=seed)
        autopilot = Control(autopilot=True)
        for _ in range(int(rng.integers(1, self.warmup_max + 1))):
            frame = world.step(autopilot)  # start somewhere along the route, with motion under way
        frames = [frame] + [world.step(autopilot) for _ in range(length - 1)]
        clip = frames_to_clip(frames)
        return augment_clip(clip, self.width, self.height, rng, self.augment)

    def __del__(self) -> None:
        if self._world is not None:
            try:
                self._world.close()
            except Exception:  # noqa: BLE001 - interpreter shutdown; nothing to report to
                pass
