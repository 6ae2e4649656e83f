"""The live view: a running drive's ticks served over the Foxglove WebSocket protocol (foxglove-sdk's
server), on the same channels as an MCAP session (mcap_format.py), so one Foxglove layout shows both.

The server binds 127.0.0.1 only: a drive's camera is nobody else's business, and a headless server is
reached through an SSH tunnel (ssh -L 8765:127.0.0.1:8765). A tick is encoded only while a client
listens (foxglove-sdk says so per channel), and the server drops a slow client's oldest messages
rather than hold the drive back (its message backlog).
"""

from __future__ import annotations

from typing import Any

import foxglove
import numpy as np

from carla_bridge.core.frames import Control, SceneFrame
from carla_bridge.session.mcap_format import STREAMS, encode_tick, log_time_ns
from carla_bridge.session.recorder import tick_record

HOST = "127.0.0.1"
DEFAULT_PORT = 8765  # Foxglove's own default for its WebSocket connections


class LiveView:
    """Serve ticks on ``port`` (0: any free port; ``port`` then says which). Raises RuntimeError when
    the port cannot be bound (foxglove-sdk's error)."""

    def __init__(self, port: int = DEFAULT_PORT, name: str = "neural-drive") -> None:
        self._context = foxglove.Context()
        self._server = foxglove.start_server(name=name, host=HOST, port=port, context=self._context)
        # Every channel is advertised at once, so a client subscribes before the first tick reaches it.
        self._channels = {topic: foxglove.Channel(topic, message_encoding=stream.message_encoding,
                                                  schema=foxglove.Schema(name=stream.schema_name,
                                                                         encoding=stream.schema_encoding,
                                                                         data=stream.schema_data),
                                                  context=self._context)
                          for topic, stream in STREAMS.items()}
        self.ticks = 0

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def publish(self, frame: SceneFrame, control: Control, rendered: np.ndarray | None,
                timings: dict[str, Any]) -> None:
        """Send one tick to the clients that listen (none: nothing is encoded)."""
        self.ticks += 1
        if not any(channel.has_sinks() for channel in self._channels.values()):
            return
        arrays = {"labels": frame.labels, **({"flow": frame.flow} if frame.flow is not None else {}),
                  **({"depth": frame.depth} if frame.depth is not None else {})}
        record = tick_record(self.ticks - 1, frame, control, timings, list(arrays))
        time_ns = log_time_ns(frame.time_s)
        for topic, payload in encode_tick(record, arrays, rendered, frame.rgb):
            self._channels[topic].log(payload, log_time=time_ns)

    def close(self) -> None:
        self._server.stop()
