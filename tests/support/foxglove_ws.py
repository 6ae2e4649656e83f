"""A Foxglove WebSocket client's side of the protocol, for the live view tests: subscribe to every
advertised channel, then tell which topic a data message belongs to."""

from __future__ import annotations

import asyncio
import json

SUBPROTOCOL = "foxglove.sdk.v1"  # what foxglove-sdk's server accepts
MESSAGE_DATA = 1  # binary opcode: op (1 byte), subscription id (u32), log time (u64), payload


async def subscribe_all(client, topics: int | None = None) -> list[str]:
    """Wait for the advertisement of ``topics`` channels (or of /frame), subscribe to them all; return
    the topic of each subscription id."""
    channels: dict[int, str] = {}
    while "/frame" not in channels.values() or (topics is not None and len(channels) < topics):
        message = json.loads(await asyncio.wait_for(client.recv(), 30))
        if message["op"] == "advertise":
            channels.update({channel["id"]: channel["topic"] for channel in message["channels"]})
    ids = list(channels)
    await client.send(json.dumps({"op": "subscribe", "subscriptions": [
        {"id": number, "channelId": channel} for number, channel in enumerate(ids)]}))
    return [channels[channel] for channel in ids]


def data_message(message, topics: list[str]) -> tuple[str, bytes] | None:
    """(topic, payload) of a messageData frame, None for anything else."""
    if not isinstance(message, bytes) or message[0] != MESSAGE_DATA:
        return None
    return topics[int.from_bytes(message[1:5], "little")], message[13:]
