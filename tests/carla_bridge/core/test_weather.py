import numpy as np
import pytest

from carla_bridge.core.frames import SceneFrame
from carla_bridge.core.weather import (CLEAR_NOON, WEATHER_DIM, WEATHER_NAMES, check_weather, from_weather_parameters,
                                       weather_vector)

SUNSET = dict(sun_altitude_angle=15.0, cloudiness=5.0, precipitation=0.0, precipitation_deposits=50.0,
              wetness=100.0, fog_density=2.0)


def test_vector_scales_carla_units():
    v = weather_vector(**SUNSET)
    assert v.dtype == np.float32 and v.shape == (WEATHER_DIM,)
    assert v.tolist() == pytest.approx([15 / 90, 0.05, 0.0, 0.5, 1.0, 0.02])
    night = weather_vector(**{**SUNSET, "sun_altitude_angle": -90.0})
    assert night[0] == -1.0


@pytest.mark.parametrize("change, words", [
    ({"fog_density": 101.0}, "fog_density: a number in 0..100"),
    ({"cloudiness": float("nan")}, "cloudiness"),
    ({"wetness": True}, "wetness"),
    ({"sunshine": 1.0}, "unknown ['sunshine']"),
])
def test_bad_parameters_name_the_field(change, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        weather_vector(**{**SUNSET, **change})


def test_from_weather_parameters_reads_attributes_and_clips():
    class Parameters:
        pass

    p = Parameters()
    for name, value in {**SUNSET, "sun_altitude_angle": -120.0}.items():
        setattr(p, name, value)
    v = from_weather_parameters(p)
    assert v[0] == -1.0 and v[1] == pytest.approx(0.05)


def test_scene_frame_checks_its_weather():
    labels = np.zeros((4, 8), np.uint8)
    SceneFrame(0, 0.0, labels, weather=CLEAR_NOON).validate()
    with pytest.raises(ValueError, match=r"SceneFrame.weather must be a \(6,\) float32"):
        SceneFrame(0, 0.0, labels, weather=CLEAR_NOON.astype(np.float64)).validate()
    with pytest.raises(ValueError, match="outside"):
        check_weather(np.full(WEATHER_DIM, 2.0, np.float32))
    assert len(WEATHER_NAMES) == WEATHER_DIM
