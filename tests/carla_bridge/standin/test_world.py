"""The stand-in's episode state (carla_bridge.standin.world): CARLA weather to procedural presets."""

from __future__ import annotations

import pytest

pytest.importorskip("msgpack")  # the stand-in's servers come with the carla extra

from carla_bridge.standin.world import weather_index  # noqa: E402


@pytest.mark.parametrize("carla_preset, expected", [
    ([5.0, 0, 0, 10, -1, 45, 2, 0.75, 0.1, 0, 1, 0.03, 0.0331, 0], "ClearNoon"),
    ([5.0, 0, 0, 10, -1, 15, 2, 0.75, 0.1, 0, 1, 0.03, 0.0331, 0], "ClearSunset"),
    ([60.0, 0, 0, 10, -1, 45, 3, 0.75, 0.1, 0, 1, 0.03, 0.0331, 0], "CloudyNoon"),
    ([60.0, 0, 50, 10, -1, 45, 3, 0.75, 0.1, 50, 1, 0.03, 0.0331, 0], "WetCloudyNoon"),
])
def test_weather_maps_carla_presets_to_procedural_names(carla_preset, expected):
    names = ["ClearNoon", "ClearSunset", "CloudyNoon", "WetCloudyNoon", "FoggyMorning"]
    assert names[weather_index(carla_preset, names)] == expected
