"""The shared data model: label table, colorize, SceneFrame validation, Control checks, --res parsing."""

import math

import numpy as np
import pytest

from carla_bridge.core.frames import CAMERA_SIDES, Control, EgoState, SceneFrame, Transform, parse_size
from carla_bridge.core.labels import LABELS, NUM_LABELS, PALETTE, TAG, check_labels, colorize


def test_label_table_matches_carla_tags():
    assert NUM_LABELS == 29
    assert [label.id for label in LABELS] == list(range(29))
    assert TAG["Roads"] == 1 and TAG["RoadLines"] == 24 and TAG["GuardRail"] == 28
    assert tuple(PALETTE[TAG["Car"]]) == (0, 0, 142)
    assert tuple(PALETTE[TAG["Sky"]]) == (70, 130, 180)


def test_colorize_uses_the_palette_and_flags_unknown_ids():
    labels = np.array([[1, 11], [14, 200]], dtype=np.uint8)
    rgb = colorize(labels)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (128, 64, 128)
    assert tuple(rgb[1, 0]) == (0, 0, 142)
    assert tuple(rgb[1, 1]) == (255, 0, 255)  # unknown id shows magenta


def test_colorize_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        colorize(np.zeros((2, 2), dtype=np.int64))


def test_check_labels_names_the_bad_id():
    with pytest.raises(ValueError, match="tag id 29"):
        check_labels(np.full((4, 4), 29, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(H, W\) uint8"):
        check_labels(np.zeros((4, 4, 1), dtype=np.uint8))


def _frame(**overrides):
    h, w = 4, 6
    fields = dict(
        index=0,
        time_s=0.0,
        labels=np.ones((h, w), np.uint8),
        flow=np.zeros((h, w, 2), np.float32),
        depth=np.ones((h, w), np.float32),
        rgb=np.zeros((h, w, 3), np.uint8),
    )
    fields.update(overrides)
    return SceneFrame(**fields)


def test_scene_frame_validate_accepts_a_good_frame():
    frame = _frame().validate()
    assert frame.size == (6, 4)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("flow", np.zeros((4, 6, 3), np.float32), "SceneFrame.flow"),
        ("flow", np.full((4, 6, 2), np.nan, np.float32), "NaN"),
        ("depth", np.zeros((4, 6), np.float64), "SceneFrame.depth"),
        ("rgb", np.zeros((4, 5, 3), np.uint8), "SceneFrame.rgb"),
        ("labels", np.full((4, 6), 40, np.uint8), "tag id 40"),
    ],
)
def test_scene_frame_validate_names_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        _frame(**{field: value}).validate()


@pytest.mark.parametrize("field", ["throttle", "steer", "brake"])
def test_control_rejects_non_finite_values(field):
    with pytest.raises(ValueError, match=f"Control.{field}"):
        Control(**{field: math.nan})
    with pytest.raises(ValueError, match=f"Control.{field}"):
        Control(**{field: 2.0})


def test_control_and_ego_round_trip_through_dicts():
    ego = EgoState(Transform(1, 2, 3, 0, 90, 0), 5.0, Control(throttle=0.5, steer=-0.2, reverse=True))
    assert EgoState.from_dict(ego.as_dict()) == ego
    assert ego.speed_kmh == pytest.approx(18.0)


def test_a_camera_size_flag():
    assert parse_size("512x256", sides=CAMERA_SIDES) == (512, 256)
    with pytest.raises(ValueError, match="--res must look like WIDTHxHEIGHT"):
        parse_size("512", sides=CAMERA_SIDES)
    with pytest.raises(ValueError, match=r"--res sides must lie in 16\.\.8192 pixels, got 8x8"):
        parse_size("8x8", sides=CAMERA_SIDES)


@pytest.mark.parametrize("size, said", [
    ((64.5, 32), "two whole numbers"), ((True, 32), "two whole numbers"), (("64", "32"), "two whole numbers"),
    ((64, 32, 1), "two whole numbers"), ((0, 32), "sides must be positive"), ("0x32", "sides must be positive"),
])
def test_a_size_is_two_whole_positive_numbers(size, said):
    assert parse_size((np.int64(64), 32.0), "size") == (64, 32)
    with pytest.raises(ValueError, match=f"^size .*{said}"):
        parse_size(size, "size")
