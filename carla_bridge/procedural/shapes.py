"""Moving actors as prisms: per-kind templates in the actor's own frame, placed by each tick's pose."""

from __future__ import annotations

import numpy as np

from carla_bridge.core.labels import TAG
from carla_bridge.procedural import materials as M
from carla_bridge.procedural.kernel import P_CX, P_CY, P_COS, P_OBJ, P_SIN, P_COLS
from carla_bridge.procedural.scenery import PrismList

CAR_COLORS = np.array([(0.75, 0.75, 0.78), (0.08, 0.08, 0.1), (0.6, 0.08, 0.08), (0.1, 0.2, 0.5),
                       (0.9, 0.9, 0.88), (0.35, 0.37, 0.4), (0.15, 0.35, 0.2), (0.8, 0.55, 0.1)])


def vehicle_template(kind: str, color) -> np.ndarray:
    """Prisms of one vehicle in its own frame (x forward, y right)."""
    p = PrismList()
    if kind == "car":
        p.box(0.0, 0.0, 2.25, 0.95, 0.0, 0.2, 1.0, TAG["Car"], M.M_CAR_BODY, color)
        p.box(-0.3, 0.0, 1.25, 0.85, 0.0, 1.0, 1.48, TAG["Car"], M.M_CAR_CABIN, color)
    elif kind == "truck":
        p.box(2.7, 0.0, 0.9, 1.2, 0.0, 0.35, 2.1, TAG["Truck"], M.M_CAR_BODY, color)
        p.box(2.6, 0.0, 0.8, 1.15, 0.0, 2.1, 2.9, TAG["Truck"], M.M_CAR_CABIN, color)
        p.box(-0.9, 0.0, 2.65, 1.25, 0.0, 0.7, 3.6, TAG["Truck"], M.M_PROP, (0.85, 0.85, 0.82))
    else:
        p.box(0.0, 0.0, 5.5, 1.3, 0.0, 0.3, 1.5, TAG["Bus"], M.M_CAR_BODY, color)
        p.box(0.0, 0.0, 5.45, 1.28, 0.0, 1.5, 2.8, TAG["Bus"], M.M_CAR_CABIN, color)
        p.box(0.0, 0.0, 5.5, 1.3, 0.0, 2.8, 3.1, TAG["Bus"], M.M_PROP, color)
    return p.array()


def pedestrian_template(shirt, param: float) -> np.ndarray:
    p = PrismList()
    p.circle(0.0, 0.0, 0.24, 0.0, 1.75, TAG["Pedestrians"], M.M_PEDESTRIAN, shirt, param)
    return p.array()


def place(templates: list[np.ndarray], poses: np.ndarray) -> np.ndarray:
    """World prisms of actors: template rows moved by (x, y, yaw) poses; P_OBJ = actor index."""
    if not templates:
        return np.zeros((0, P_COLS))
    counts = [len(t) for t in templates]
    rows = np.concatenate(templates).copy()
    obj = np.repeat(np.arange(len(templates)), counts)
    x, y, yaw = poses[obj, 0], poses[obj, 1], poses[obj, 2]
    c, s = np.cos(yaw), np.sin(yaw)
    lx, ly = rows[:, P_CX].copy(), rows[:, P_CY].copy()
    rows[:, P_CX] = x + lx * c - ly * s
    rows[:, P_CY] = y + lx * s + ly * c
    lc, ls = rows[:, P_COS].copy(), rows[:, P_SIN].copy()
    rows[:, P_COS] = lc * c - ls * s
    rows[:, P_SIN] = ls * c + lc * s
    rows[:, P_OBJ] = obj
    return rows
