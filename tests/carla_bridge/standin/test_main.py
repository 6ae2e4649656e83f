"""``python -m carla_bridge.standin``'s flags: a bad --seed or --pedestrians is one line naming the
flag, before any town is built."""

from __future__ import annotations

import pytest

from carla_bridge.standin.__main__ import parse_args


@pytest.mark.parametrize("argv, needle", [
    (["--seed", "-1"], "argument --seed: must be 0 or more"),
    (["--pedestrians", "-5"], "argument --pedestrians: must be in 0..500"),
])
def test_standin_flags_are_named(capsys, argv, needle):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and needle in err and "WorldConfig" not in err, err
