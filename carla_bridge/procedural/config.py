"""WorldConfig, the weather / lighting presets, and the checks of what enters the procedural world."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from carla_bridge.core.frames import Transform
from carla_bridge.core.values import is_int, is_real
from carla_bridge.core.weather import CLEAR_NOON, weather_vector
from carla_bridge.procedural.kernel import (W_AMB, W_CLOUD, W_FOG, W_FOGD, W_HORIZON, W_SIZE, W_SUN, W_SUNCOL, W_WET,
                                            W_ZENITH)

MAX_ACTORS = 500  # vehicles, and pedestrians, a world may hold (command lines check their flags against it;
#                   n_vehicles is also limited by the town: one spawn point each, checked when the world is built)


@dataclass
class WorldConfig:
    """Everything that defines a procedural world run.

    The camera is CARLA's hood camera (manual_control.py): mounted on the ego at ``camera``, looking
    forward, level (pitch and roll 0: the column ray caster needs vertical image columns).
    """

    width: int = 512
    height: int = 256
    fov: float = 90.0
    seed: int = 0
    n_vehicles: int = 12
    n_pedestrians: int = 30
    delta_s: float = 0.05
    camera: Transform = field(default_factory=lambda: Transform(x=1.6, y=0.0, z=1.7))
    weather: int = 0
    max_distance: float = 300.0
    threads: int | None = None  # numba threads for rendering (None: numba's default)

    def __post_init__(self) -> None:
        check_seed(self.seed, "WorldConfig.seed")
        check_camera(self.width, self.height, self.fov, ("WorldConfig.width", "WorldConfig.height", "WorldConfig.fov"))
        if not is_real(self.delta_s, finite=True) or not 0 < self.delta_s <= 1.0:
            raise ValueError(f"WorldConfig.delta_s must be in (0, 1] seconds, got {self.delta_s!r}")
        for name in ("n_vehicles", "n_pedestrians"):
            value = getattr(self, name)
            if not is_int(value) or not 0 <= value <= MAX_ACTORS:
                raise ValueError(f"WorldConfig.{name} must be an integer in 0..{MAX_ACTORS}, got {value!r}")
        cam = check_transform(self.camera, "WorldConfig.camera")
        if cam.pitch != 0.0 or cam.roll != 0.0:
            raise ValueError("WorldConfig.camera pitch and roll must be 0 (the renderer casts one ray per "
                             f"vertical image column), got pitch={cam.pitch} roll={cam.roll}")
        if not is_real(cam.z) or not 0.3 <= cam.z <= 50.0:
            raise ValueError(f"WorldConfig.camera.z must be a height in 0.3..50 m, got {cam.z!r}")
        if not is_int(self.weather) or not 0 <= self.weather < len(WEATHERS):
            raise ValueError(f"WorldConfig.weather must be an index in 0..{len(WEATHERS) - 1}, got {self.weather!r}")
        if not is_real(self.max_distance, finite=True) or self.max_distance <= 0:
            raise ValueError(f"WorldConfig.max_distance must be a finite number of metres > 0, "
                             f"got {self.max_distance!r}")
        if self.threads is not None and (not is_int(self.threads) or self.threads < 1):
            raise ValueError(f"WorldConfig.threads must be None (numba's default) or an integer >= 1, "
                             f"got {self.threads!r}")


def check_seed(seed: object, what: str = "seed") -> int:
    if not is_int(seed) or seed < 0:
        raise ValueError(f"{what} must be an integer >= 0, got {seed!r}")
    return int(seed)


def check_camera(width: object, height: object, fov: object,
                 names: tuple[str, str, str] = ("camera width", "camera height", "camera fov")) -> None:
    """What the column ray caster draws; ``names`` are the caller's names for the three values."""
    for name, value in zip(names, (width, height)):
        if not is_int(value) or not 16 <= value <= 8192:
            raise ValueError(f"{name} must be an integer in 16..8192 pixels, got {value!r}")
    if not is_real(fov, finite=True) or not 10.0 <= fov <= 170.0:
        raise ValueError(f"{names[2]} must be a number of degrees in 10..170, got {fov!r}")


def check_transform(transform: object, what: str, fields: tuple[str, ...] = ("x", "y", "yaw")) -> Transform:
    """A Transform whose ``fields`` are finite numbers (a NaN pose would poison every later tick)."""
    if not isinstance(transform, Transform):
        raise ValueError(f"{what} must be a carla_bridge.Transform, got {type(transform).__name__}")
    for name in fields:
        value = getattr(transform, name)
        if not is_real(value, finite=True):
            raise ValueError(f"{what}.{name} must be a finite number, got {value!r}")
    return transform


def _weather(sun_az: float, sun_el: float, sun: tuple, amb: tuple, zenith: tuple, horizon: tuple,
             fog: tuple, fog_density: float, cloud: float, wet: float = 0.0) -> np.ndarray:
    w = np.zeros(W_SIZE, np.float64)
    az, el = math.radians(sun_az), math.radians(sun_el)
    w[W_SUN:W_SUN + 3] = (math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el))
    w[W_SUNCOL:W_SUNCOL + 3], w[W_AMB:W_AMB + 3] = sun, amb
    w[W_ZENITH:W_ZENITH + 3], w[W_HORIZON:W_HORIZON + 3] = zenith, horizon
    w[W_FOG:W_FOG + 3], w[W_FOGD], w[W_CLOUD], w[W_WET] = fog, fog_density, cloud, wet
    return w


# name -> weather vector (names follow carla.WeatherParameters presets where one matches).
WEATHERS: dict[str, np.ndarray] = {
    "ClearNoon": _weather(30, 60, (0.85, 0.82, 0.75), (0.45, 0.5, 0.58), (0.25, 0.45, 0.8),
                          (0.7, 0.8, 0.92), (0.72, 0.8, 0.9), 0.0025, 0.35),
    "ClearSunset": _weather(200, 10, (1.0, 0.6, 0.32), (0.35, 0.32, 0.38), (0.2, 0.25, 0.5),
                            (0.95, 0.62, 0.4), (0.85, 0.6, 0.45), 0.004, 0.3),
    "CloudyNoon": _weather(60, 50, (0.3, 0.3, 0.3), (0.7, 0.72, 0.75), (0.55, 0.58, 0.62),
                           (0.78, 0.8, 0.82), (0.75, 0.77, 0.8), 0.004, 0.85),
    "WetCloudyNoon": _weather(60, 50, (0.2, 0.2, 0.2), (0.6, 0.62, 0.66), (0.45, 0.48, 0.52),
                              (0.68, 0.7, 0.73), (0.66, 0.68, 0.71), 0.006, 0.95, wet=1.0),
    "FoggyMorning": _weather(120, 20, (0.35, 0.33, 0.3), (0.6, 0.62, 0.64), (0.72, 0.74, 0.76),
                             (0.78, 0.79, 0.8), (0.78, 0.79, 0.8), 0.03, 0.6),
}
WEATHER_NAMES: list[str] = list(WEATHERS)

# The same presets in CARLA's WeatherParameters terms (carla_bridge.core.weather): what SceneFrame.weather
# tells the generator. Sun altitudes and cloud cover are those the lighting above renders; CARLA's own
# ClearNoon / ClearSunset / CloudyNoon carry fog_density 2-3, and WetCloudyNoon puddles (deposits 50).
WEATHER_PARAMETERS: dict[str, np.ndarray] = {
    "ClearNoon": CLEAR_NOON,
    "ClearSunset": weather_vector(sun_altitude_angle=10.0, cloudiness=30.0, precipitation=0.0,
                                  precipitation_deposits=0.0, wetness=0.0, fog_density=2.0),
    "CloudyNoon": weather_vector(sun_altitude_angle=50.0, cloudiness=85.0, precipitation=0.0,
                                 precipitation_deposits=0.0, wetness=0.0, fog_density=3.0),
    "WetCloudyNoon": weather_vector(sun_altitude_angle=50.0, cloudiness=95.0, precipitation=0.0,
                                    precipitation_deposits=50.0, wetness=100.0, fog_density=3.0),
    "FoggyMorning": weather_vector(sun_altitude_angle=20.0, cloudiness=60.0, precipitation=0.0,
                                   precipitation_deposits=0.0, wetness=0.0, fog_density=40.0),
}
