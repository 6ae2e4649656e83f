"""Stream tokens in RPC answers, rewritten to point at the proxy.

A token (streaming::Token, 24 bytes: stream id, port, protocol, address; carla_bridge.standin.streaming)
tells the client where to subscribe. The server's answers carry them in several places (the episode
info, ``get_sensor_token``, every rpc::Actor of a sensor), so the answer is walked whole: each msgpack
bin that reads as a TCP/IPv4 token gets the proxy's address and port, keeping its stream id.
"""

from __future__ import annotations

from typing import Any

from carla_bridge.proxy.streams import ProxyStreamServer
from carla_bridge.standin.streaming import decode_token


def stream_id_of(token: bytes) -> int | None:
    decoded = decode_token(token)
    return None if decoded is None else decoded[0]


def rewrite_tokens(value: Any, streams: ProxyStreamServer) -> Any:
    """``value`` with every stream token replaced by the proxy's token of the same stream."""
    if isinstance(value, bytes):
        decoded = decode_token(value)
        if decoded is None:
            return value
        stream_id, upstream_port = decoded
        streams.relay_from(stream_id, upstream_port)
        return streams.token(stream_id)
    if isinstance(value, list):
        return [rewrite_tokens(item, streams) for item in value]
    if isinstance(value, dict):
        return {key: rewrite_tokens(item, streams) for key, item in value.items()}
    return value
