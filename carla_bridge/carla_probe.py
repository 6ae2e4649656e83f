"""Cheap checks of a CARLA address that need neither the ``carla`` package nor a client object.

``carla_server_answers``: does anything accept TCP connections there (the source's liveness probe).
``not_carla_reason``: does what answers speak CARLA's msgpack-rpc. libcarla cannot survive a peer
that answers anything else: an HTTP server's "400 Bad Request" made it throw std::bad_cast from its
I/O thread and the whole process aborted (exit 134, no Python error; seen with --host of a web
proxy). So a source asks once, before it hands the address to ``carla.Client``.
"""

from __future__ import annotations

import socket

# msgpack of the rpc request [0, 0, "version", []]: type request, msgid 0, CARLA's "version" method
# (the first call the real client makes; rpclib's wire format, see shared/reference).
VERSION_REQUEST = b"\x94\x00\x00\xa7version\x90"
RPC_RESPONSE = 0x94  # a response is the msgpack 4-array [1, msgid, error, result]


def carla_server_answers(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def not_carla_reason(host: str, port: int, timeout_s: float = 2.0) -> str | None:
    """Why the server at host:port is not CARLA, or None when it may be. Only a reply that is not a
    msgpack-rpc response counts against it: no connection, or no reply in time, is left to the caller's
    own time-out and message (a busy CARLA can be slow to answer)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as connection:
            connection.settimeout(timeout_s)
            connection.sendall(VERSION_REQUEST)
            reply = connection.recv(64)
    except OSError:
        return None
    if not reply or reply[0] == RPC_RESPONSE:
        return None
    preview = reply.split(b"\r\n")[0][:40].decode("ascii", "replace")
    return f"it answered {preview!r}, not a msgpack-rpc reply"
