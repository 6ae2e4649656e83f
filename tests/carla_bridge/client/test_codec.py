"""CARLA sensor byte formats: decoders against hand-made bytes, encoders as exact inverses, and the
one optical-flow sign constant (carla_bridge/client/codec.py). No carla package or server needed."""

from __future__ import annotations

import numpy as np
import pytest

from carla_bridge.client import codec


def test_semantic_tag_is_the_red_byte_of_bgra():
    raw = bytes([9, 8, 7, 255, 0, 0, 14, 255])  # two pixels, B G R A
    labels, unknown = codec.decode_semantic(raw, 2, 1)
    np.testing.assert_array_equal(labels, [[7, 14]])
    assert unknown == 0


def test_semantic_round_trip_and_errors():
    labels = np.random.default_rng(0).integers(0, 29, (6, 10), dtype=np.uint8)
    raw = codec.encode_semantic(labels)
    assert len(raw) == 6 * 10 * 4
    np.testing.assert_array_equal(codec.decode_semantic(raw, 10, 6)[0], labels)
    with pytest.raises(ValueError, match="holds 236 bytes, expected 240 for 10x6"):
        codec.decode_semantic(raw[:-4], 10, 6)


def test_unknown_semantic_tags_become_unlabeled_and_are_counted():
    raw = bytes([0, 0, 40, 255, 0, 0, 7, 255, 0, 0, 29, 255, 0, 0, 255, 255])  # tags 40, 7, 29, 255
    labels, unknown = codec.decode_semantic(raw, 4, 1)
    np.testing.assert_array_equal(labels, [[0, 7, 0, 0]])
    assert unknown == 3


def test_depth_decodes_carla_24_bit_code_to_metres():
    # normalized = (R + G*256 + B*256^2) / (256^3 - 1), metres = 1000 * normalized (CARLA ref_sensors)
    raw = bytes([255, 255, 255, 255, 0, 0, 1, 255, 0, 1, 0, 255])  # white, R=1, G=1
    depth = codec.decode_depth(raw, 3, 1)
    np.testing.assert_allclose(depth[0], [1000.0, 1000.0 / (2**24 - 1), 256000.0 / (2**24 - 1)], rtol=1e-6)


def test_depth_round_trip_within_quantisation_and_sky_saturates():
    depth = np.array([[0.0, 0.5, 3.25, 99.9, 999.0, np.inf]], dtype=np.float32)
    back = codec.decode_depth(codec.encode_depth(depth), 6, 1)
    step = 1000.0 / (2**24 - 1)
    np.testing.assert_allclose(back[0, :5], depth[0, :5], atol=step)
    assert back[0, 5] == pytest.approx(1000.0)


def test_flow_sign_constant_is_the_documented_convention():
    # CARLA gives screen motion previous -> current in NDC with y up; ours is backward, pixels, y down.
    assert codec.CARLA_FLOW_SIGN == (-1.0, 1.0)
    assert codec.CARLA_FLOW_NDC_SPAN == 2.0
    width, height = 64, 32
    carla = np.zeros((height, width, 2), np.float32)
    carla[..., 0] = 0.1  # moved right by 0.1 NDC = 3.2 px: it came from 3.2 px to the left
    carla[..., 1] = 0.1  # moved up by 0.1 NDC = 1.6 px: it came from 1.6 px below (y down)
    flow = codec.carla_flow_to_backward_pixels(carla)
    np.testing.assert_allclose(flow[0, 0], [-3.2, 1.6], rtol=1e-6)


def test_flow_round_trip_and_non_finite_values():
    flow = np.random.default_rng(1).normal(0, 5, (8, 12, 2)).astype(np.float32)
    raw = codec.encode_flow(flow)
    assert len(raw) == 8 * 12 * 2 * 4
    np.testing.assert_allclose(codec.decode_flow(raw, 12, 8), flow, rtol=1e-6, atol=1e-5)
    bad = np.full((2, 2, 2), np.nan, np.float32)
    assert np.all(codec.carla_flow_to_backward_pixels(bad) == 0.0)
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        codec.carla_flow_to_backward_pixels(np.zeros((4, 4), np.float32))


def test_rgb_round_trip_swaps_bgra():
    rgb = np.random.default_rng(2).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    raw = codec.encode_rgb(rgb)
    assert raw[:3] == bytes(rgb[0, 0, ::-1]) and raw[3] == 255
    np.testing.assert_array_equal(codec.decode_rgb(raw, 7, 5), rgb)
