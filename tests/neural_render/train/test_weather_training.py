"""A tiny weather model trained for it follows a change of weather preset within a few frames (measured:
the mean colour is within 20 levels of the new look one frame after the change)."""

import numpy as np
import pytest
import torch

from carla_bridge.core.frames import SceneFrame
from carla_bridge.procedural.config import WEATHER_PARAMETERS
from neural_render.model import build_generator
from neural_render.runtime.renderer import Renderer
from neural_render.train.clip import frames_to_clip
from neural_render.train.rollout import Rollout

W, H = 32, 16
# Two presets of very different brightness, as the procedural world's look differs (a constructed target).
LOOK = {"ClearNoon": (200, 200, 190), "ClearSunset": (60, 30, 20)}


def _labels(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.repeat(np.repeat(rng.integers(0, 29, (H // 4, W // 4)), 4, 0), 4, 1).astype(np.uint8)


def _clip(preset: str, seed: int, frames: int = 3):
    rgb = np.broadcast_to(np.array(LOOK[preset], np.uint8), (H, W, 3)).copy()
    return frames_to_clip([SceneFrame(i, 0.05 * i, _labels(seed), rgb=rgb, flow=np.zeros((H, W, 2), np.float32),
                                      weather=WEATHER_PARAMETERS[preset], cut=i == 0) for i in range(frames)])


@pytest.mark.slow  # 120 training steps: about 10 s on a free core, minutes on a loaded 2-core box
def test_the_render_follows_a_change_of_weather_within_a_few_frames():
    torch.manual_seed(0)
    model = build_generator("tiny", weather_dim=6)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(120):
        clips = [_clip(p, seed=step % 7) for p in LOOK]  # one clip of each preset per batch
        batch = {k: torch.stack([c[k] for c in clips]) for k in clips[0]}
        target = batch["rgb"].float() / 127.5 - 1
        rollout, loss = Rollout(model), 0.0
        for t in range(batch["labels"].shape[1]):
            out = rollout.step(batch["labels"][:, t], batch["flow"][:, t], batch["has_flow"][:, t], cut=t == 0,
                               weather=batch["weather"][:, t])
            loss = loss + (out.image - target[:, t]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    means = []
    with Renderer(model, backend="torch", size=(W, H)) as renderer:
        for i in range(10):  # a drive on a held-out label map: noon, then the C key's sunset at frame 5
            preset = "ClearNoon" if i < 5 else "ClearSunset"
            frame = SceneFrame(i, 0.05 * i, _labels(99), flow=np.zeros((H, W, 2), np.float32), cut=i == 0,
                               weather=WEATHER_PARAMETERS[preset])
            means.append(renderer.render(frame).reshape(-1, 3).mean(0))
    noon, sunset = np.array(LOOK["ClearNoon"]), np.array(LOOK["ClearSunset"])
    assert np.abs(means[4] - noon).max() < 30, means[4]
    # Within three frames of the change the mean colour has gone most of the way to the sunset look.
    assert np.abs(means[7] - sunset).max() < 30, means[7]
    assert means[7].mean() < means[4].mean() - 100


def test_weather_all_trains_a_weather_generator_from_an_old_checkpoint(tmp_path):
    from neural_render.checkpoint import save_generator
    from neural_render.train.config import resolve
    from neural_render.train.trainer import Trainer

    torch.manual_seed(0)
    old = build_generator("tiny")  # trained without weather
    init = save_generator(old, tmp_path / "old.safetensors")
    trainer = Trainer(resolve("tiny", "fast", weather="all", device="cpu", init=str(init), vgg_weights=None))
    assert trainer.G.config.weather_dim == 6
    state = trainer.G.state_dict()
    assert all(torch.equal(state[k], v) for k, v in old.state_dict().items())  # it starts as the old model
    clips = [_clip(p, seed=1) for p in LOOK]
    logs = trainer.train_step({k: torch.stack([c[k] for c in clips]) for k in clips[0]})
    assert np.isfinite(logs["l1"])
    # The weather maps learnt from the step: the vector reached the generator.
    assert any(v.abs().sum() > 0 for k, v in trainer.G.state_dict().items() if ".weather." in k)
