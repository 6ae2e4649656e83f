"""``python -m carla_bridge.proxy``'s flags: bad ones end with a line naming the flag and what to do."""

from __future__ import annotations

import pytest

from carla_bridge.proxy.__main__ import main


@pytest.mark.parametrize("argv, named", [
    (["--model", "no/such.safetensors"], "argument --model: no file no/such.safetensors"),
    (["--cameras", "front"], "argument --cameras: 'front': use all, or role:NAME"),
    (["--port", "65535"], "argument --port: must lie in 1..65534"),
])
def test_bad_flags_name_the_flag_and_the_fix(argv, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err


def test_a_camera_selection_picks_rgb_cameras_by_role():
    from carla_bridge.proxy.cameras import CameraSelection

    front = CameraSelection.parse("role:front")
    assert front.wants("sensor.camera.rgb", {"role_name": "front"})
    assert not front.wants("sensor.camera.rgb", {"role_name": "back"})
    assert not CameraSelection.parse("all").wants("sensor.camera.depth", {})
