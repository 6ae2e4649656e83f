"""The weather as the generator sees it: a few of CARLA's WeatherParameters, each scaled to a fixed
range, in one float32 vector (``WEATHER_DIM``). The procedural world states its presets in these terms
(carla_bridge.procedural.config), the CARLA source reads them from world.get_weather(), and SceneFrame
carries the vector to the renderer, whose generator modulates its features with it.

Scaling (CARLA 0.9.16's ranges, python_api.md "carla.WeatherParameters"): the sun's altitude is in
degrees -90..90 and becomes [-1, 1] (below 0 is night); cloudiness, precipitation, precipitation
deposits, wetness and fog density are in 0..100 and become [0, 1].
"""

from __future__ import annotations

import math

import numpy as np

# (WeatherParameters attribute, its range in CARLA's units), in the vector's order.
WEATHER_FIELDS: tuple[tuple[str, float, float], ...] = (
    ("sun_altitude_angle", -90.0, 90.0),
    ("cloudiness", 0.0, 100.0),
    ("precipitation", 0.0, 100.0),
    ("precipitation_deposits", 0.0, 100.0),
    ("wetness", 0.0, 100.0),
    ("fog_density", 0.0, 100.0),
)
WEATHER_DIM = len(WEATHER_FIELDS)
WEATHER_NAMES = tuple(name for name, _, _ in WEATHER_FIELDS)


def weather_vector(**parameters: float) -> np.ndarray:
    """(WEATHER_DIM,) float32 from every field of WEATHER_FIELDS in CARLA's units (keyword arguments);
    a missing, unknown, non-finite or out-of-range value is a ValueError naming it."""
    missing = [name for name in WEATHER_NAMES if name not in parameters]
    unknown = sorted(set(parameters) - set(WEATHER_NAMES))
    if missing or unknown:
        raise ValueError(f"weather: give exactly {', '.join(WEATHER_NAMES)}; missing {missing}, unknown {unknown}")
    vector = np.empty(WEATHER_DIM, np.float32)
    for i, (name, low, high) in enumerate(WEATHER_FIELDS):
        value = parameters[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low <= value <= high:
            raise ValueError(f"weather {name}: a number in {low:g}..{high:g}, got {value!r}")
        scale = (value - low) / (high - low)
        vector[i] = 2.0 * scale - 1.0 if low < 0 else scale
    return vector


def from_weather_parameters(parameters: object) -> np.ndarray:
    """The vector of a carla.WeatherParameters (or anything with its attributes). CARLA clamps what
    it is given, so its values lie in range; they are clipped here too, so that a server's own
    out-of-range value (a sun below -90 degrees after an azimuth wrap, say) cannot stop a drive."""
    values = {}
    for name, low, high in WEATHER_FIELDS:
        value = float(getattr(parameters, name))
        values[name] = min(high, max(low, value)) if math.isfinite(value) else low
    return weather_vector(**values)


def check_weather(weather: object, what: str = "weather") -> np.ndarray:
    """``weather`` as it must enter the renderer: a (WEATHER_DIM,) float32 array of finite values, each
    in its scaled range; ValueError naming ``what`` otherwise."""
    if not isinstance(weather, np.ndarray) or weather.shape != (WEATHER_DIM,) or weather.dtype != np.float32:
        got = f"{getattr(weather, 'shape', type(weather).__name__)} {getattr(weather, 'dtype', '')}".strip()
        raise ValueError(f"{what} must be a ({WEATHER_DIM},) float32 array from carla_bridge.core.weather."
                         f"weather_vector ({', '.join(WEATHER_NAMES)}), got {got}")
    if not np.isfinite(weather).all() or weather.min() < -1.0 or weather.max() > 1.0:
        raise ValueError(f"{what} holds values outside [-1, 1] or NaN: build it with weather_vector")
    return weather


# What a renderer assumes when a frame says nothing of its weather: clear noon as the procedural world
# renders it (its default preset, and the look every model trained before weather conditioning learnt).
CLEAR_NOON = weather_vector(sun_altitude_angle=60.0, cloudiness=35.0, precipitation=0.0,
                            precipitation_deposits=0.0, wetness=0.0, fog_density=2.0)
