"""Cheap checks of a CARLA address that need neither the ``carla`` package nor a client object.

``host_problem``: why the host name cannot be used (it does not resolve), or None.
``carla_server_answers``: does anything accept TCP connections there (the source's liveness probe,
the game's ``--source auto`` probe).
``not_carla_reason``: does what answers speak CARLA's msgpack-rpc. libcarla cannot survive a peer
that answers anything else: an HTTP server's "400 Bad Request" makes it throw std::bad_cast from its
I/O thread and the whole process aborts (exit 134, no Python error), so a source asks once, before it
hands the address to ``carla.Client``.
``ConnectionWatch``: one idle connection held open, which says, without opening another, whether
the server's end closed it (the kernel of a killed server resets it).
"""

from __future__ import annotations

import select
import socket

# msgpack of the rpc request [0, 10, "version", []]: type request, msgid 10, CARLA's "version" method
# (the first call the real client makes; rpclib's wire format). The msgid 10 is the byte b"\n": a
# line-based server (HTTP, SMTP, ...) reads it as the end of a request line and answers its error at
# once, where any other msgid would leave it waiting for a line end until the probe's time-out.
VERSION_REQUEST = b"\x94\x00\x0a\xa7version\x90"
RPC_RESPONSE = 0x94  # a response is the msgpack 4-array [1, msgid, error, result]


def host_problem(host: str) -> str | None:
    """Why ``host`` cannot be reached by name, or None. Asked before any probe: a name that does not
    resolve would otherwise read like a server that is not running ("start CARLA first")."""
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        return f"the host name {host!r} does not resolve ({error.strerror or error})"
    except (OSError, UnicodeError):  # e.g. a label too long for IDNA: not a usable name either
        return f"{host!r} is not a valid host name"
    return None


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
    preview = reply.splitlines()[0][:40].decode("ascii", "replace")  # e.g. an HTTP status line
    return f"it answered {preview!r}, not a msgpack-rpc reply"


class ConnectionWatch:
    """One TCP connection to host:port, opened once and never written to: ``closed()`` asks the
    kernel, at no cost to the server, whether the other end closed it. A hung (stopped) server keeps
    it open: only a time-out tells that one."""

    def __init__(self, host: str, port: int, timeout_s: float = 0.5) -> None:
        self._connection = socket.create_connection((host, port), timeout=timeout_s)

    def closed(self) -> bool:
        readable, _, _ = select.select([self._connection], [], [], 0.0)
        if not readable:
            return False
        try:
            return self._connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:  # reset
            return True

    def close(self) -> None:
        self._connection.close()
