"""Which rgb cameras the proxy renders, and the helper cameras it spawns for each on the real server.

A neural camera needs the semantic labels and the optical flow of its view: the proxy spawns a
``sensor.camera.semantic_segmentation`` and a ``sensor.camera.optical_flow`` at the rgb camera's
parent, transform and attachment, with the attributes that fix the view (size, fov, sensor_tick, the
lens model), so that their frames of a tick show exactly what the rgb camera sees.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

RGB = "sensor.camera.rgb"
SEMANTIC = "sensor.camera.semantic_segmentation"
FLOW = "sensor.camera.optical_flow"
HELPERS = (SEMANTIC, FLOW)
VIEW_ATTRIBUTES = ("image_size_x", "image_size_y", "fov", "sensor_tick")
VIEW_ATTRIBUTE_PREFIX = "lens_"
# CARLA's defaults for a camera whose description leaves them out (blueprint library, ref_sensors).
DEFAULT_SIZE = (800, 600)
DEFAULT_FOV = 90.0


@dataclass(frozen=True)
class CameraSelection:
    """``all`` or ``role:NAME`` (the camera's role_name attribute): the --cameras flag."""

    role: str | None = None

    @staticmethod
    def parse(text: str) -> CameraSelection:
        if text == "all":
            return CameraSelection()
        if text.startswith("role:") and text[len("role:"):]:
            return CameraSelection(text[len("role:"):])
        raise argparse.ArgumentTypeError(f"'{text}': use all, or role:NAME for the rgb cameras whose "
                                         "role_name attribute is NAME")

    def wants(self, type_id: str, attributes: dict[str, str]) -> bool:
        return type_id == RGB and (self.role is None or attributes.get("role_name") == self.role)


def view_of(attributes: dict[str, str]) -> tuple[int, int, float, bool]:
    """(width, height, fov, every_tick) of an rgb camera: a sensor_tick of 0 sends a frame every tick."""
    width = int(attributes.get("image_size_x", DEFAULT_SIZE[0]))
    height = int(attributes.get("image_size_y", DEFAULT_SIZE[1]))
    fov = float(attributes.get("fov", DEFAULT_FOV))
    return width, height, fov, float(attributes.get("sensor_tick", 0.0)) == 0.0


def helper_description(description: list, type_id: str, uid: int) -> list:
    """The description of a helper camera of type ``type_id`` (its blueprint ``uid`` on the server)
    with the view attributes of the rgb camera's ``description``."""
    kept = [list(a) for a in description[2]
            if a[0] in VIEW_ATTRIBUTES or str(a[0]).startswith(VIEW_ATTRIBUTE_PREFIX)]
    return [uid, type_id, kept]
