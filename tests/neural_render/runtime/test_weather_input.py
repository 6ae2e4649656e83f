"""The weather as one more graph input: every backend passes frame.weather to a model that takes it,
the ONNX export round-trips it, and a model without it says once that it ignores the weather."""

import logging
import types

import numpy as np
import pytest
import torch

from carla_bridge.core.weather import CLEAR_NOON, WEATHER_DIM
from neural_render.export import PARITY_TOLERANCE, check_parity
from neural_render.model import build_generator
from neural_render.runtime.onnx import cached_onnx, check_graph, export_onnx
from neural_render.runtime.renderer import Renderer

SIZE = (64, 32)
DUSK = np.array([0.1, 0.9, 0.0, 0.5, 1.0, 0.4], np.float32)


@pytest.fixture(scope="module")
def weathered():
    torch.manual_seed(0)
    model = build_generator("tiny", weather_dim=WEATHER_DIM).eval()
    for name, parameter in model.named_parameters():
        if ".weather." in name:  # as after training: the weather moves the image
            torch.nn.init.normal_(parameter, std=0.3)
    return model


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path / "cache"))


def frames(weathers):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 29, (SIZE[1], SIZE[0]), dtype=np.uint8)
    flow = np.zeros((SIZE[1], SIZE[0], 2), np.float32)
    return [types.SimpleNamespace(labels=labels, flow=None if i == 0 else flow, cut=i == 0, weather=w)
            for i, w in enumerate(weathers)]


def test_export_round_trips_the_weather_input(weathered, tmp_path):
    path = export_onnx(weathered, tmp_path / "w.onnx", *SIZE)
    assert check_graph(path)["inputs"][-1] == "weather"
    assert check_parity(weathered, path, *SIZE) <= PARITY_TOLERANCE["fp32"]
    # The same weights without the weather maps are another model: another cache entry.
    plain = build_generator("tiny").eval()
    plain.load_state_dict({k: v for k, v in weathered.state_dict().items() if ".weather." not in k})
    assert cached_onnx(weathered, *SIZE).name != cached_onnx(plain, *SIZE).name


BACKENDS = ["torch", "onnxruntime", pytest.param("openvino", marks=pytest.mark.skipif(
    not __import__("importlib").util.find_spec("openvino"), reason="OpenVINO is not installed"))]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_cpu_backend_follows_the_weather_as_torch_does(weathered, backend):
    weathers = [CLEAR_NOON, CLEAR_NOON, DUSK, DUSK]
    with Renderer(weathered, backend="torch", size=SIZE) as reference, \
            Renderer(weathered, backend=backend, size=SIZE) as renderer:
        assert renderer.takes_weather
        expected = [reference.render(f).astype(int) for f in frames(weathers)]
        got = [renderer.render(f).astype(int) for f in frames(weathers)]
    for want, have in zip(expected, got):
        assert np.abs(want - have).max() <= 1  # a rounding step of the uint8 image
    assert np.abs(got[2] - got[1]).mean() > 2  # dusk is another image
    # A frame that says nothing of its weather renders as a clear noon one.
    with Renderer(weathered, backend=backend, size=SIZE) as renderer:
        unsaid = [renderer.render(f) for f in frames([None] * 2)]
    np.testing.assert_array_equal(unsaid[1], got[1])


def test_bad_weather_is_refused_where_the_frame_enters(weathered):
    renderer = Renderer(weathered, backend="torch", size=SIZE)
    with pytest.raises(ValueError, match=r"frame.weather must be a \(6,\) float32"):
        renderer.render(frames([CLEAR_NOON.astype(np.float64)])[0])
    with pytest.raises(ValueError, match="weather vector of 3 values; frames carry 6"):
        Renderer(build_generator("tiny", weather_dim=3), backend="torch", size=SIZE)


def test_a_model_without_weather_says_once_that_it_ignores_it(caplog):
    torch.manual_seed(0)
    renderer = Renderer(build_generator("tiny"), backend="onnxruntime", size=SIZE)
    assert not renderer.takes_weather
    with caplog.at_level(logging.WARNING, logger="neural_render.runtime"):
        noon = [renderer.render(f) for f in frames([CLEAR_NOON] * 3)]
        renderer.reset()
        dusk = [renderer.render(f) for f in frames([DUSK] * 3)]
    said = [r.getMessage() for r in caplog.records if "ignores the frames' weather" in r.getMessage()]
    assert len(said) == 1 and "'tiny' was trained without weather input" in said[0]
    np.testing.assert_array_equal(noon[2], dusk[2])
