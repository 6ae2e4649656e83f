"""The stand-in server's command line: a port in use is one line naming both ports."""

from __future__ import annotations

import socket


def test_standin_port_in_use_names_both_ports(capsys):
    """The RPC port in use is one line naming both ports, not a traceback from the server's threads."""
    from carla_bridge.standin.__main__ import main

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert main(["--port", str(port), "--res", "32x16", "--pedestrians", "0", "--log-level", "ERROR"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"cannot listen on 127.0.0.1:{port}" in err, err
    assert f"ports {port} (rpc) and {port + 1} (streaming)" in err and "pass another --port" in err
