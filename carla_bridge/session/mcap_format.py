"""A session as MCAP messages: one channel per stream, Foxglove's well-known schemas where one fits.

One tick becomes these messages, all at log time = simulation time (ns), sequence = the tick's position:

    /labels/ids     foxglove.RawImage mono8: the raw tag ids, lossless (what the replay reads)
    /labels/colour  foxglove.RawImage rgb8: the ids in the CityScapes palette (what a person looks at)
    /flow           foxglove.RawImage 32FC2: backward flow in pixels, float32, lossless
    /depth          foxglove.RawImage 32FC1: metres, when recorded
    /engine         foxglove.RawImage rgb8: the engine image, lossless, when the tick has one
    /render         foxglove.RawImage rgb8: the neural render, when the tick has one
    /ego            foxglove.FrameTransform world -> ego
    /control        JSON: the control the drive passed to the recorder (Foxglove plots it)
    /timings        JSON: the stage timings in ms
    /frame          JSON: the tick's frames.jsonl record (format.py) plus "topics", written last

/frame plays the part of the frames.jsonl line: it is written after every other message of its tick and
names them, so a reader keeps a tick only when it has them all. The session's meta (session.json's
keys) is the MCAP metadata record "session"; the keys the recorder adds at its close come in a second
record, "session_close". Metadata values are strings (MCAP spec): each one holds its key's JSON.
Messages are protobuf-encoded by foxglove-sdk's own schema classes, so no image goes through base64.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import foxglove.messages as fox
import numpy as np

from carla_bridge.core.labels import colorize
from carla_bridge.session.writer import json_default

META_NAME = "session"
CLOSE_META_NAME = "session_close"
FRAME_TOPIC = "/frame"
CAMERA_FRAME = "camera"  # RawImage.frame_id
WORLD_FRAME, EGO_FRAME = "world", "ego"  # FrameTransform parent and child


@dataclass(frozen=True)
class Stream:
    """A channel: its topic and schema, the same in an MCAP file and on the live server."""

    topic: str
    schema_name: str
    schema_encoding: str  # "protobuf" (a FileDescriptorSet) or "jsonschema"
    schema_data: bytes
    message_encoding: str  # "protobuf" or "json"


def _foxglove(topic: str, message_class: Any) -> Stream:
    schema = message_class.get_schema()
    return Stream(topic, schema.name, schema.encoding, bytes(schema.data), "protobuf")


def _json(topic: str, name: str, properties: dict[str, Any]) -> Stream:
    schema = {"title": name, "type": "object", "properties": properties}
    return Stream(topic, name, "jsonschema", json.dumps(schema).encode(), "json")


_NUMBER = {"type": "number"}
# image topic -> (SceneFrame array kind it carries, RawImage encoding, numpy dtype, channels)
IMAGE_TOPICS: dict[str, tuple[str, str, str, int]] = {
    "/labels/ids": ("labels", "mono8", "uint8", 1),
    "/labels/colour": ("labels", "rgb8", "uint8", 3),
    "/flow": ("flow", "32FC2", "float32", 2),
    "/depth": ("depth", "32FC1", "float32", 1),
    "/engine": ("rgb", "rgb8", "uint8", 3),
    "/render": ("render", "rgb8", "uint8", 3),
}
STREAMS: dict[str, Stream] = {s.topic: s for s in (
    *(_foxglove(topic, fox.RawImage) for topic in IMAGE_TOPICS),
    _foxglove("/ego", fox.FrameTransform),
    _json("/control", "neural_drive.Control", {key: _NUMBER for key in ("throttle", "steer", "brake")}
          | {"reverse": {"type": "boolean"}, "hand_brake": {"type": "boolean"}, "autopilot": {"type": "boolean"}}),
    _json("/timings", "neural_drive.StageTimings", {}),
    _json(FRAME_TOPIC, "neural_drive.FrameRecord", {"position": {"type": "integer"}, "index": {"type": "integer"},
                                                    "time_s": _NUMBER, "topics": {"type": "array"}}),
)}


def log_time_ns(time_s: float) -> int:
    """MCAP's log time of a tick: its simulation time in ns (a recording's timeline is the drive's)."""
    return max(0, round(time_s * 1e9))


def encode_meta(meta: dict[str, Any]) -> dict[str, str]:
    """session.json's keys as an MCAP metadata map: each value its JSON text."""
    return {key: json.dumps(value, default=json_default) for key, value in meta.items()}


def encode_tick(record: dict[str, Any], arrays: dict[str, np.ndarray], render: np.ndarray | None,
                engine: np.ndarray | None) -> list[tuple[str, bytes]]:
    """The (topic, payload) messages of one tick, /frame last. ``arrays`` are the lossless kinds
    (labels, flow, depth, rgb) as the folder format stores them; ``engine`` is the engine image when it
    is not among them (a drive recorded without --record-rgb). ``record`` gains "topics"."""
    images = dict(arrays)
    if render is not None:
        images["render"] = render
    if engine is not None and "rgb" not in images:
        images["rgb"] = engine
    stamp = _timestamp(record["time_s"])
    messages = []
    for topic, (kind, encoding, _, _) in IMAGE_TOPICS.items():
        if kind in images:
            image = colorize(images[kind]) if topic == "/labels/colour" else images[kind]
            messages.append((topic, _raw_image(stamp, encoding, image)))
    messages.append(("/ego", _ego_transform(stamp, record["ego"]["transform"])))
    messages.append(("/control", _json_bytes(record["control"])))
    messages.append(("/timings", _json_bytes(record.get("timings_ms", {}))))
    record["topics"] = [topic for topic, _ in messages]
    messages.append((FRAME_TOPIC, _json_bytes(record)))
    return messages


def _timestamp(time_s: float) -> fox.Timestamp:
    sec, nsec = divmod(log_time_ns(time_s), 1_000_000_000)
    return fox.Timestamp(sec=sec, nsec=nsec)


def _raw_image(stamp: fox.Timestamp, encoding: str, image: np.ndarray) -> bytes:
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    return fox.RawImage(timestamp=stamp, frame_id=CAMERA_FRAME, width=width, height=height, encoding=encoding,
                        step=image.strides[0], data=image.tobytes()).encode()


def _ego_transform(stamp: fox.Timestamp, pose: dict[str, float]) -> bytes:
    """CARLA's left-handed pose (x forward, y right, z up, degrees) in Foxglove's right-handed frames:
    y, pitch and yaw change sign, as the CARLA ROS bridge converts them (carla_ros_bridge transforms.py)."""
    roll, pitch, yaw = (math.radians(a) for a in (pose["roll"], -pose["pitch"], -pose["yaw"]))
    cr, sr, cp, sp, cy, sy = (f(a / 2) for a in (roll, pitch, yaw) for f in (math.cos, math.sin))
    rotation = fox.Quaternion(x=sr * cp * cy - cr * sp * sy, y=cr * sp * cy + sr * cp * sy,
                              z=cr * cp * sy - sr * sp * cy, w=cr * cp * cy + sr * sp * sy)
    translation = fox.Vector3(x=pose["x"], y=-pose["y"], z=pose["z"])
    return fox.FrameTransform(timestamp=stamp, parent_frame_id=WORLD_FRAME, child_frame_id=EGO_FRAME,
                              translation=translation, rotation=rotation).encode()


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, default=json_default, separators=(",", ":")).encode()
