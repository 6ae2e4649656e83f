"""One neural camera: the frames of its two helper cameras paired by frame id, rendered by its own
renderer (history kept per camera), and published on the rgb camera's stream as CARLA's rgb camera
sends a frame: its header (sensor type, frame id, timestamp, transform of the tick), ``<IIf`` width,
height, fov, then BGRA pixels."""

from __future__ import annotations

import logging
import threading
import time
import types
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from carla_bridge.client.codec import decode_flow, decode_semantic, encode_rgb
from carla_bridge.proxy.cameras import FLOW, SEMANTIC
from carla_bridge.standin.protocol import IMAGE_HEADER_BYTES, SENSOR_TYPE, image_payload, read_image_header

log = logging.getLogger("carla_bridge.proxy.neural")

STATS_FRAMES = 1000  # the latest frames the added-latency figures are taken over
RenderFactory = Callable[[int, int], Any]
"""(width, height) -> an object with render(frame) -> (H, W, 3) uint8, reset() and close()."""


class NeuralCamera:
    """Fed by the helper streams' threads (on_payload); publishes through ``publish(stream_id, payload)``."""

    def __init__(self, actor_id: int, stream_id: int, view: tuple[int, int, float, bool], renderer: Any,
                 publish: Callable[[int, bytes], int]) -> None:
        self.actor_id, self.stream_id = actor_id, stream_id
        self.width, self.height, self.fov, self.every_tick = view
        self.renderer = renderer
        self._publish = publish
        self.helpers: list[int] = []  # actor ids of the helper cameras on the real server
        self.streams: list[Any] = []  # their UpstreamStreams
        self._pending: dict[int, dict[str, Any]] = {}  # frame id -> {"header", SEMANTIC, FLOW}
        self._lock = threading.Lock()  # the pending frames
        self._render_lock = threading.Lock()  # one render at a time: the renderer keeps one history
        self._published = threading.Condition()
        self.last_frame = -1  # the last frame id published (or skipped for a helper frame that was missing)
        self.render_s = 0.0  # the last render's duration
        self.added_s: deque[float] = deque(maxlen=STATS_FRAMES)
        """Per frame, what the proxy adds beyond the render: the decoding of both helper frames, the
        pairing, the encoding and the send, from the second helper frame's arrival."""

    def on_payload(self, type_id: str, payload: bytes) -> None:
        arrived = time.perf_counter()
        header = read_image_header(payload)
        pixels = memoryview(payload)[IMAGE_HEADER_BYTES:]
        if type_id == SEMANTIC:
            data = decode_semantic(pixels, header.width, header.height)[0]
        else:
            data = decode_flow(pixels, header.width, header.height)
        with self._lock:
            entry = self._pending.setdefault(header.frame, {"header": header, "decode_s": 0.0})
            entry[type_id] = data
            if SEMANTIC not in entry or FLOW not in entry:
                entry["decode_s"] = time.perf_counter() - arrived  # the first half's, done on its own thread
                return
            del self._pending[header.frame]
            for stale in [f for f in self._pending if f < header.frame]:  # its other half never came
                del self._pending[stale]
        self._render(entry, arrived)

    def _render(self, entry: dict[str, Any], arrived: float) -> None:
        header = entry["header"]
        with self._render_lock:
            if header.frame <= self.last_frame:
                return
            frame = types.SimpleNamespace(labels=entry[SEMANTIC], flow=entry[FLOW], cut=False)
            started = time.perf_counter()
            image = self.renderer.render(frame)
            self.render_s = time.perf_counter() - started
            payload = image_payload(SENSOR_TYPE["sensor.camera.rgb"], header.frame, header.timestamp, header.pose,
                                    self.width, self.height, self.fov, encode_rgb(np.asarray(image)))
            self._publish(self.stream_id, payload)
            self.added_s.append(time.perf_counter() - arrived - self.render_s + entry["decode_s"])
        with self._published:
            self.last_frame = header.frame
            self._published.notify_all()

    def wait_for_frame(self, frame: int, timeout_s: float) -> bool:
        """Until frame ``frame`` (or a later one) is published; False at the timeout."""
        with self._published:
            return self._published.wait_for(lambda: self.last_frame >= frame, timeout=timeout_s)

    def close(self) -> None:
        """Stop reading the helper streams and drop the renderer (the helpers are destroyed by the session);
        logs the added latency (``python -m game.bench proxy`` reads that line)."""
        for stream in self.streams:
            stream.close()
        with self._render_lock:
            self.renderer.close()
            if self.added_s:
                added = sorted(self.added_s)
                log.info("neural camera %d: %d frames at %dx%d, added latency per frame beyond the render: "
                         "median %.2f ms, p95 %.2f ms", self.actor_id, len(added), self.width, self.height,
                         1e3 * added[len(added) // 2], 1e3 * added[int(0.95 * (len(added) - 1))])
