"""WorldConfig (carla_bridge.procedural.config): every bad value is a ValueError naming its field."""

from __future__ import annotations

import pytest

from carla_bridge.core.frames import Transform
from carla_bridge.procedural import WorldConfig

SMALL = dict(width=32, height=16, n_vehicles=0, n_pedestrians=0)
NAN, INF = float("nan"), float("inf")


def test_bad_sizes_weather_and_camera_name_the_field():
    for kwargs, field in (({"width": 0}, "width"), ({"height": 100000}, "height"), ({"fov": 0.0}, "fov"),
                          ({"fov": float("nan")}, "fov"), ({"width": 64.5}, "width"), ({"delta_s": -1.0}, "delta_s"),
                          ({"weather": 99}, "weather"), ({"camera": Transform(pitch=10.0)}, "pitch")):
        with pytest.raises(ValueError, match=field):
            WorldConfig(**kwargs)


@pytest.mark.parametrize("field, value", [
    ("seed", -1), ("seed", 1.5), ("seed", None), ("seed", "3"), ("seed", True),
    ("max_distance", 0.0), ("max_distance", -5.0), ("max_distance", NAN), ("max_distance", INF), ("max_distance", "x"),
    ("threads", 0), ("threads", -2), ("threads", 1.5), ("threads", "a"), ("threads", True),
    ("camera", None), ("camera", (1.6, 0.0, 1.7)), ("camera", Transform(x=NAN, z=1.7)),
    ("camera", Transform(y=INF, z=1.7)), ("camera", Transform(yaw=NAN, z=1.7)), ("camera", Transform(z="1.7")),
    ("n_vehicles", True), ("n_pedestrians", False), ("delta_s", True), ("weather", True),
])
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"WorldConfig.{field}"):
        WorldConfig(**{**SMALL, field: value})
