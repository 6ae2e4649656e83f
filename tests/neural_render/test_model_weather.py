"""The generator's weather input (GeneratorConfig.weather_dim): FiLM on every SPADE / CLADE modulation,
absent from old checkpoints."""

import json

import pytest
import torch

from neural_render.checkpoint import DEFAULT_MODEL_PATH, load_generator, read_metadata, save_generator
from neural_render.model import GeneratorConfig, RenderStep, build_generator, example_inputs
from support.checkpoints import resaved


def _weathered(seed: int = 0):
    """A tiny weather model whose weather maps are not zero (a trained one's are not)."""
    torch.manual_seed(seed)
    model = build_generator("tiny", weather_dim=6).eval()
    for name, parameter in model.named_parameters():
        if ".weather." in name:
            torch.nn.init.normal_(parameter, std=0.3)
    return model


def test_weather_changes_the_image_and_zero_maps_change_nothing():
    model = _weathered()
    labels, prev, flow, hist, has_flow, weather = example_inputs(model.config, 32, 16, batch=2)
    with torch.no_grad():
        a = model(labels, prev, flow, hist, has_flow, weather).image
        b = model(labels, prev, flow, hist, has_flow, 1 - weather).image
    assert (a - b).abs().mean() > 1e-2
    # A fresh weather model starts as the same network without weather: its maps are zero.
    torch.manual_seed(1)
    fresh = build_generator("tiny", weather_dim=6).eval()
    torch.manual_seed(1)
    plain = build_generator("tiny").eval()
    plain.load_state_dict({k: v for k, v in fresh.state_dict().items() if ".weather." not in k})
    with torch.no_grad():
        torch.testing.assert_close(fresh(labels, prev, flow, hist, has_flow, weather).image,
                                   plain(labels, prev, flow, hist, has_flow).image)


def test_weather_dim_is_checked_and_saved(tmp_path):
    with pytest.raises(ValueError, match=r"weather_dim: an integer in 0..64"):
        GeneratorConfig(weather_dim=-1)
    model = _weathered()
    path = save_generator(model, tmp_path / "w.safetensors")
    assert read_metadata(path)[0].weather_dim == 6
    loaded = load_generator(path)
    inputs = example_inputs(model.config, 32, 16)
    with torch.no_grad():
        torch.testing.assert_close(RenderStep(loaded)(*inputs)[0], RenderStep(model)(*inputs)[0])


def test_a_checkpoint_from_before_weather_loads_without_it(tmp_path):
    # The shipped model was saved before weather_dim existed: its config has no such field.
    assert "weather_dim" not in json.loads(_metadata(DEFAULT_MODEL_PATH)["config"])
    assert load_generator(DEFAULT_MODEL_PATH).config.weather_dim == 0
    # And a tiny one with the field taken out of its metadata loads the same weights as before.
    saved = save_generator(build_generator("tiny"), tmp_path / "new.safetensors")

    def drop_field(metadata):
        config = json.loads(metadata["config"])
        del config["weather_dim"]
        metadata["config"] = json.dumps(config)

    old = resaved(saved, tmp_path / "old.safetensors", edit_metadata=drop_field)
    assert load_generator(old).config == load_generator(saved).config


def _metadata(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata()
