"""``python -m carla_bridge.standin``'s flags: a bad --seed or --pedestrians is one line naming the
flag, before any town is built; a port in use is one line naming both ports."""

from __future__ import annotations

import socket

import pytest

from carla_bridge.standin.__main__ import main, parse_args


@pytest.mark.parametrize("argv, needle", [
    (["--seed", "-1"], "argument --seed: must be 0 or more"),
    (["--pedestrians", "-5"], "argument --pedestrians: must be in 0..500"),
])
def test_standin_flags_are_named(capsys, argv, needle):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and needle in err and "WorldConfig" not in err, err



def test_standin_port_in_use_names_both_ports(capsys):
    """The RPC port in use is one line naming both ports, not a traceback from the server's threads."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert main(["--port", str(port), "--res", "32x16", "--pedestrians", "0", "--log-level", "ERROR"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"cannot listen on 127.0.0.1:{port}" in err, err
    assert f"ports {port} (rpc) and {port + 1} (streaming)" in err and "pass another --port" in err
