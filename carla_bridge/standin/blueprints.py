"""The blueprint library the stand-in offers: a few cars and the cameras our CARLA source uses.

Wire form (rpc::ActorDefinition): ``[uid, id, tags, attributes]`` with each attribute
``[id, type, value, recommended_values, is_modifiable, restrict_to_recommended]``. On the wire the type
is the C++ enum rpc::ActorAttributeType, which starts at Bool = 1 (the Python enum
carla.ActorAttributeType starts at 0: the client rejects ``number_of_wheels: invalid bool`` otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

BOOL, INT, FLOAT, STRING, RGB = 1, 2, 3, 4, 5

CAMERAS = (
    "sensor.camera.semantic_segmentation",
    "sensor.camera.optical_flow",
    "sensor.camera.depth",
    "sensor.camera.rgb",
)

# (id, bounding-box half extents in metres) of real CARLA cars, so sizes look familiar to the TM.
VEHICLES = (
    ("vehicle.tesla.model3", (2.40, 1.08, 0.75)),
    ("vehicle.audi.a2", (1.85, 0.90, 0.78)),
    ("vehicle.lincoln.mkz_2020", (2.45, 1.06, 0.75)),
    ("vehicle.mercedes.coupe_2020", (2.34, 1.01, 0.71)),
)


@dataclass(frozen=True)
class Blueprint:
    uid: int
    id: str
    attributes: tuple[list, ...]

    @property
    def tags(self) -> str:
        return ",".join(self.id.split("."))

    def to_rpc(self) -> list:
        return [self.uid, self.id, self.tags, [list(a) for a in self.attributes]]


def _attribute(name: str, kind: int, value: str, recommended: tuple[str, ...] = (), modifiable=True) -> list:
    return [name, kind, value, list(recommended), modifiable, False]


def _camera_attributes(role: str = "front") -> tuple[list, ...]:
    return (
        _attribute("image_size_x", INT, "800"),
        _attribute("image_size_y", INT, "600"),
        _attribute("fov", FLOAT, "90"),
        _attribute("sensor_tick", FLOAT, "0.0"),
        _attribute("role_name", STRING, role),
        _attribute("gamma", FLOAT, "2.2"),
        _attribute("lens_circle_multiplier", FLOAT, "0.0"),
        _attribute("lens_circle_falloff", FLOAT, "5.0"),
        _attribute("chromatic_aberration_intensity", FLOAT, "0.0"),
        _attribute("chromatic_aberration_offset", FLOAT, "0.0"),
    )


def _vehicle_attributes() -> tuple[list, ...]:
    return (
        _attribute("role_name", STRING, "autopilot", ("autopilot", "scenario", "ego_vehicle", "hero")),
        _attribute("color", RGB, "17,37,103", ("17,37,103", "255,255,255", "0,0,0", "180,0,0")),
        _attribute("number_of_wheels", INT, "4", modifiable=False),
        _attribute("base_type", STRING, "car", modifiable=False),
        _attribute("generation", INT, "2", modifiable=False),
        _attribute("sticky_control", BOOL, "true", ("true", "false")),
        _attribute("terramechanics", BOOL, "false", ("true", "false")),
    )


def blueprint_library() -> list[Blueprint]:
    library = [Blueprint(1 + i, name, _vehicle_attributes()) for i, (name, _) in enumerate(VEHICLES)]
    library += [Blueprint(100 + i, name, _camera_attributes()) for i, name in enumerate(CAMERAS)]
    return library


def vehicle_extent(type_id: str) -> tuple[float, float, float]:
    """Half extents of a vehicle blueprint (the first car's for an unknown id)."""
    return dict(VEHICLES).get(type_id, VEHICLES[0][1])


def description_attributes(description: list) -> dict[str, str]:
    """Attribute values of a wire ActorDescription ``[uid, id, [[name, type, value], ...]]``."""
    return {str(a[0]): str(a[2]) for a in description[2]}
