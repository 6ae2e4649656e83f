"""A raw msgpack-rpc client for the stand-in tests (no tests here): requests as rpclib frames them, and
whatever bytes a test wants to throw at the server."""

from __future__ import annotations

import socket
from typing import Any

import msgpack


class RawRpc:
    """One TCP connection to a msgpack-rpc server; every wait is bounded by ``timeout_s``."""

    def __init__(self, port: int, timeout_s: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        self._unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self._msgid = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: Any, params: Any) -> list:
        """``[0, msgid, method, params]``; returns the server's ``[1, msgid, error, result]``."""
        self._msgid += 1
        self.send(msgpack.packb([0, self._msgid, method, params], use_bin_type=True))
        return self.reply()

    def reply(self) -> Any:
        while True:
            for message in self._unpacker:
                return message
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("the server closed the connection")
            self._unpacker.feed(data)

    def closed_by_server(self) -> bool:
        """Whether the server ends this connection (EOF or reset) before the time-out."""
        try:
            while self.sock.recv(1 << 16):
                pass
        except TimeoutError:
            return False
        except OSError:
            pass
        return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawRpc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
