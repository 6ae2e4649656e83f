"""`python -m carla_bridge.check_flow` (carla_bridge/check_flow.py): its warp, how it ranks the flow
readings of a synthetic camera whose convention we choose, and the whole command against the stand-in."""

from __future__ import annotations

import numpy as np
import pytest

from carla_bridge import check_flow
from carla_bridge.client.codec import CARLA_FLOW_NO_VELOCITY, backward_pixels_to_carla_flow
from support.carla import free_port_pair, require_carla, standin  # noqa: F401

SHIFT_PX = 3.0


def _texture(height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth rgb pattern with detail both ways, so that a wrong warp shows."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [np.sin(xs / 3.0 + k) * 60 + np.cos(ys / 4.0 + xs / 7.0 - k) * 60 + 127 for k in range(3)]
    return np.stack(channels, axis=-1).astype(np.uint8)


def _pair(carla_gain: tuple[float, float] = (1.0, 1.0)):
    """Frames t-1, t of a camera panning so that pixel x of t was at x + 3 in t-1, and the flow a
    camera would send for it whose values are ``carla_gain`` times what our reading expects."""
    previous = _texture()
    current = np.roll(previous, -int(SHIFT_PX), axis=1)
    flow = np.zeros(previous.shape[:2] + (2,), np.float32)
    flow[..., 0] = SHIFT_PX
    return previous, current, backward_pixels_to_carla_flow(flow) * np.array(carla_gain, np.float32)


def test_the_warp_samples_the_previous_frame_where_the_flow_points():
    image = np.arange(6 * 8 * 3, dtype=np.float32).reshape(6, 8, 3)
    flow = np.zeros((6, 8, 2), np.float32)
    flow[...] = (2.0, 1.0)
    warped, inside = check_flow.backward_warp(image, flow)
    np.testing.assert_allclose(warped[:5, :6], image[1:, 2:])
    assert inside[:5, :6].all() and not inside[5].any() and not inside[:, 6:].any()
    flow[...] = (0.5, 0.0)
    np.testing.assert_allclose(check_flow.backward_warp(image, flow)[0][:, :7], (image[:, :7] + image[:, 1:]) / 2)


@pytest.mark.parametrize("carla_gain, best, code, says", [
    ((1.0, 1.0), check_flow.OURS, 0, "flow matches our convention"),
    ((0.5, 0.5), check_flow.DOCS, 1, "CARLA_FLOW_NDC_SPAN = 1.0"),  # a camera whose value 1 is one image size
    ((-1.0, 1.0), "scale 1, x flipped", 1, "negate CARLA_FLOW_SIGN[0]"),
])
def test_the_reading_that_warps_best_is_the_camera_s_convention(carla_gain, best, code, says):
    previous, current, carla_flow = _pair(carla_gain)
    verdict = check_flow.judge([check_flow.warp_errors(previous, current, carla_flow)])
    assert verdict.best == best and verdict.exit_code == code, verdict.errors
    assert says in verdict.lines()[-1]


def test_a_camera_that_did_not_move_is_inconclusive():
    previous = _texture()
    verdict = check_flow.judge([check_flow.warp_errors(previous, previous, np.zeros((48, 64, 2), np.float32))])
    assert verdict.exit_code == 2 and verdict.lines()[-1].startswith("inconclusive")


def test_pixels_without_velocity_are_left_out():
    previous, current, carla_flow = _pair()
    carla_flow[:, :20] = CARLA_FLOW_NO_VELOCITY  # the sky of a real CARLA: (-2, -2)
    errors = check_flow.warp_errors(previous, current, carla_flow)
    assert errors[check_flow.OURS] < 0.2 * errors[check_flow.STILL]


@pytest.mark.carla
def test_the_command_against_the_stand_in_finds_our_convention_and_puts_the_world_back(standin, capsys):
    carla = require_carla()
    code = check_flow.main(["--host", "127.0.0.1", "--port", str(standin.port), "--res", "200x150", "--ticks", "10"])
    out = capsys.readouterr().out
    assert code == 0 and "flow matches our convention" in out, out
    client = carla.Client("127.0.0.1", standin.port)
    client.set_timeout(5.0)
    world = client.get_world()
    world.wait_for_tick(5.0)
    assert not world.get_settings().synchronous_mode
    assert [a.type_id for a in world.get_actors()] == ["spectator"]


def test_no_server_is_one_clear_line(capsys):
    port, _ = free_port_pair()
    assert check_flow.main(["--port", str(port)]) == 2
    assert f"no CARLA server answers at 127.0.0.1:{port}" in capsys.readouterr().err
    assert check_flow.main(["--res", "8x8"]) == 2
    assert "--res sides must lie in 16..8192" in capsys.readouterr().err
