"""CARLA weather parameters -> the procedural world's lighting/weather presets.

rpc::WeatherParameters of CARLA 0.9.16 on the wire (14 floats, checked against the real client):
cloudiness, precipitation, precipitation_deposits, wind_intensity, sun_azimuth_angle,
sun_altitude_angle, fog_density, fog_distance, fog_falloff, wetness, scattering_intensity,
mie_scattering_scale, rayleigh_scattering_scale, dust_storm. The procedural world has a handful of
named presets; a client's weather is mapped to the preset whose name best describes it.
"""

from __future__ import annotations

import re

FIELDS = (
    "cloudiness", "precipitation", "precipitation_deposits", "wind_intensity", "sun_azimuth_angle",
    "sun_altitude_angle", "fog_density", "fog_distance", "fog_falloff", "wetness",
    "scattering_intensity", "mie_scattering_scale", "rayleigh_scattering_scale", "dust_storm",
)
DEFAULT_WEATHER = [10.0, 0.0, 0.0, 5.0, 0.0, 45.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.03, 0.0331, 0.0]
"""A fresh CARLA server's weather (ClearNoon-like)."""


def describe(parameters: list) -> set[str]:
    """Words that describe the weather: time of day, sky, precipitation."""
    p = dict(zip(FIELDS, (float(v) for v in parameters)))
    words: set[str] = set()
    altitude = p.get("sun_altitude_angle", 45.0)
    if altitude < 0.0:
        words |= {"night", "dark", "sunset", "dusk"}  # the nearest light a world without night has
    elif altitude < 20.0:
        words |= {"sunset", "dusk", "evening", "dawn"}
    else:
        words |= {"noon", "day", "midday"}
    if p.get("precipitation", 0.0) > 20.0:
        words |= {"rain", "rainy", "wet"}
    elif p.get("wetness", 0.0) > 30.0 or p.get("precipitation_deposits", 0.0) > 30.0:
        words |= {"wet"}
    if p.get("cloudiness", 0.0) > 50.0:
        words |= {"cloudy", "overcast", "cloud"}
    elif p.get("fog_density", 0.0) > 20.0:
        words |= {"fog", "foggy"}
    else:
        words |= {"clear", "sunny"}
    return words


def weather_index(parameters: list, names: list[str]) -> int:
    """Index of the preset in ``names`` whose words match ``parameters`` best (ties: the first)."""
    wanted = describe(parameters)

    def score(name: str) -> int:
        tokens = {t.lower() for t in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", name)}  # CamelCase
        hits = sum(1 for t in tokens if any(t.startswith(w) or w.startswith(t) for w in wanted))
        return hits * 2 - len(tokens)  # prefer names that say only what is true

    return max(range(len(names)), key=lambda i: (score(names[i]), -i))
