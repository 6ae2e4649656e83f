"""Which blueprints the ego may be: CARLA's manual_control.py rules for --filter and --generation."""

from __future__ import annotations

from typing import Any


def ego_blueprints(library: Any, vehicle_filter: str, generation: str, where: str) -> list:
    """The ego's blueprints: 4-wheeled vehicle.* (a sensor or a walker has no controls) matching the
    filter, of the generation (manual_control.py: a filter matching one blueprint ignores it)."""
    wanted = {b.id for b in library.filter(vehicle_filter)}
    vehicles = sorted((b for b in library.filter("vehicle.*") if b.id.startswith("vehicle.") and (
        not b.has_attribute("number_of_wheels") or b.get_attribute("number_of_wheels").as_int() == 4)),
        key=lambda b: b.id)
    cars = [b for b in vehicles if b.id in wanted]
    if not cars:
        examples = ", ".join(b.id for b in vehicles[:3]) or "none here"
        raise ValueError(f"--filter {vehicle_filter!r} matches no 4-wheeled vehicle blueprint on "
                         f"{where}; try vehicle.* or one of {examples}")
    if generation.lower() != "all" and len(cars) > 1:
        cars = [b for b in cars if b.has_attribute("generation")
                and b.get_attribute("generation").as_int() == int(generation)]
        if not cars:
            raise ValueError(f"--filter {vehicle_filter!r} matches no generation {generation} "
                             f"vehicle on {where}; pass --generation All")
    return cars
