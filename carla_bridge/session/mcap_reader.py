"""Read an MCAP session (layout: mcap_format.py) back: its meta, its frame records, each tick's SceneFrame.

The file is read in order with the ``mcap`` package's StreamReader, which needs no summary: a file cut
off by a kill (no summary, a chunk cut short) yields every tick whose /frame message was written, and
the cut is only noted, like a half-written last line of frames.jsonl. Everything else that is wrong
raises SessionFormatError naming the file and the problem, as reader.py does for a folder: this is
where the file enters. Frames are loaded in file order; a step back re-reads the file from the start.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zstandard
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from mcap.exceptions import McapError
from mcap.records import Channel, Message, Metadata, Schema
from mcap.stream_reader import StreamReader

from carla_bridge.core.frames import EgoState, SceneFrame
from carla_bridge.session.format import SessionFormatError, check_meta
from carla_bridge.session.mcap_format import CLOSE_META_NAME, FRAME_TOPIC, IMAGE_TOPICS, META_NAME
from carla_bridge.session.reader import DAMAGED_FIX, REQUIRED_RECORD_KEYS, record_problem, values_problem

Tick = tuple[dict[str, Any], dict[str, tuple[Schema | None, bytes]]]  # the record, topic -> its message


class McapSession:
    """A validated MCAP session: ``meta``, one record per complete tick, reader ``notes``; the same
    attributes as reader.SessionIndex, so ReplaySource plays either."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SessionFormatError(f"{self.path}: not a session: no such file")
        self.notes: list[str] = []
        self.records: list[dict[str, Any]] = []
        metadata: dict[str, dict[str, str]] = {}
        for record, messages in _ticks(self.path, metadata, self.notes):
            self._check(record, messages)
            self.records.append(record)
        self.meta = self._meta(metadata)
        self._classes: dict[str, Any] = {}
        self._cursor: Iterator[Tick] | None = None
        self._next = 0  # position of the tick the cursor yields next

    @property
    def size(self) -> tuple[int, int]:
        width, height = self.meta["size"]
        return int(width), int(height)

    def load(self, position: int) -> SceneFrame:
        """The SceneFrame of tick ``position``: labels, flow, depth and engine rgb as recorded, bit for bit."""
        if not 0 <= position < len(self.records):
            raise IndexError(f"frame {position} outside 0..{len(self.records) - 1} of {self.path}")
        if self._cursor is None or position < self._next:
            self._cursor, self._next = _ticks(self.path, {}, []), 0
        for _ in range(position - self._next):
            next(self._cursor)
        record, messages = next(self._cursor)
        self._next = position + 1
        arrays = {IMAGE_TOPICS[topic][0]: self._image(topic, *messages[topic])
                  for topic in messages if topic in IMAGE_TOPICS and topic not in ("/labels/colour", "/render")}
        return SceneFrame(
            index=int(record["index"]), time_s=float(record["time_s"]), labels=arrays["labels"],
            flow=arrays.get("flow"), depth=arrays.get("depth"), rgb=arrays.get("rgb"),
            ego=EgoState.from_dict(record["ego"]), cut=bool(record["cut"]),
        )

    def _check(self, record: Any, messages: dict[str, Any]) -> None:
        where = f"{self.path}: /frame message {len(self.records)}"
        if not isinstance(record, dict):
            raise SessionFormatError(f"{where}: expected a JSON object; {DAMAGED_FIX}")
        missing = [key for key in (*REQUIRED_RECORD_KEYS, "topics") if key not in record]
        if missing:
            raise SessionFormatError(f"{where}: record lacks {', '.join(missing)}; {DAMAGED_FIX}")
        problem = record_problem(record)
        if problem:
            raise SessionFormatError(f"{where}: {problem}; {DAMAGED_FIX}")
        if record["position"] != len(self.records):
            raise SessionFormatError(f"{where}: position {record['position']} out of order "
                                     f"(expected {len(self.records)}); {DAMAGED_FIX}")
        absent = [topic for topic in ("/labels/ids", *record["topics"]) if topic not in messages]
        if absent:
            raise SessionFormatError(f"{where}: its {absent[0]} message is missing; {DAMAGED_FIX}")

    def _meta(self, metadata: dict[str, dict[str, str]]) -> dict[str, Any]:
        if META_NAME not in metadata:
            raise SessionFormatError(
                f"{self.path}: not a neural-drive session: it has no '{META_NAME}' metadata record (an MCAP "
                "file from another tool?); record one with launch.py --record DIR --record-format mcap, or "
                "convert a session folder with python -m carla_bridge.session export-mcap SESSION OUT.mcap")
        meta: dict[str, Any] = {}
        for name in (META_NAME, CLOSE_META_NAME):  # the close's keys update the start's
            for key, text in metadata.get(name, {}).items():
                try:
                    meta[key] = json.loads(text)
                except (ValueError, RecursionError) as exc:
                    raise SessionFormatError(f"{self.path}: metadata '{name}' key '{key}' is not JSON "
                                             f"({exc}); {DAMAGED_FIX}") from None
        return check_meta(meta, self.path)

    def _image(self, topic: str, schema: Schema | None, payload: bytes) -> np.ndarray:
        kind, encoding, dtype, channels = IMAGE_TOPICS[topic]
        where = f"{self.path}: {topic} of a tick"
        if schema is None or schema.name != "foxglove.RawImage" or schema.encoding != "protobuf":
            raise SessionFormatError(f"{where}: expected a protobuf foxglove.RawImage; {DAMAGED_FIX}")
        try:
            image = self._message_class(schema).FromString(payload)
        except Exception as exc:  # protobuf's DecodeError and its kin: a damaged message
            raise SessionFormatError(f"{where}: cannot be decoded ({exc}); {DAMAGED_FIX}") from None
        width, height = self.size
        shape = (height, width, channels) if channels > 1 else (height, width)
        if (image.encoding, image.width, image.height) != (encoding, width, height) or \
                len(image.data) != int(np.prod(shape)) * np.dtype(dtype).itemsize:
            raise SessionFormatError(f"{where}: expected {encoding} {width}x{height}, got {image.encoding} "
                                     f"{image.width}x{image.height} ({len(image.data)} bytes); {DAMAGED_FIX}")
        array = np.frombuffer(image.data, dtype=dtype).reshape(shape).copy()
        problem = values_problem(kind, array)
        if problem:
            raise SessionFormatError(f"{where}: {problem}; {DAMAGED_FIX}")
        return array

    def _message_class(self, schema: Schema) -> Any:
        """The protobuf class of ``schema`` from the FileDescriptorSet the file carries (MCAP spec,
        protobuf profile), so the file decodes itself whatever foxglove-sdk version reads it."""
        if schema.name not in self._classes:
            pool = descriptor_pool.DescriptorPool()
            for file in descriptor_pb2.FileDescriptorSet.FromString(schema.data).file:
                pool.Add(file)
            self._classes[schema.name] = message_factory.GetMessageClass(pool.FindMessageTypeByName(schema.name))
        return self._classes[schema.name]


def _ticks(path: Path, metadata: dict[str, dict[str, str]], notes: list[str]) -> Iterator[Tick]:
    """The ticks of the file in order, each once its /frame message arrives; ``metadata`` collects the
    metadata records met on the way; a cut-off end is noted in ``notes``."""
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    pending: dict[str, tuple[Schema | None, bytes]] = {}
    with open(path, "rb") as handle:
        try:
            for item in StreamReader(handle, skip_magic=False, validate_crcs=True).records:
                if isinstance(item, Schema):
                    schemas[item.id] = item
                elif isinstance(item, Channel):
                    channels[item.id] = item
                elif isinstance(item, Metadata):
                    metadata[item.name] = item.metadata
                elif isinstance(item, Message):
                    channel = channels.get(item.channel_id)
                    if channel is None:
                        raise SessionFormatError(f"{path}: a message of unknown channel {item.channel_id}; "
                                                 f"{DAMAGED_FIX}")
                    if channel.topic != FRAME_TOPIC:
                        pending[channel.topic] = (schemas.get(channel.schema_id), item.data)
                        continue
                    try:
                        record = json.loads(item.data)
                    except (ValueError, RecursionError) as exc:
                        raise SessionFormatError(f"{path}: a /frame message is not JSON ({exc}); "
                                                 f"{DAMAGED_FIX}") from None
                    yield record, pending
                    pending = {}
        except SessionFormatError:
            raise
        except (McapError, struct.error, zstandard.ZstdError, ValueError) as exc:
            # A record cut short by the end of the file is a kill -9 while writing; anywhere else, damage.
            at_end = handle.tell() >= os.fstat(handle.fileno()).st_size
            if not metadata:
                raise SessionFormatError(f"{path}: not an MCAP session file, or damaged at its start "
                                         f"({type(exc).__name__}: {exc})") from None
            if not at_end:
                raise SessionFormatError(f"{path}: damaged at byte {handle.tell()} ({type(exc).__name__}: "
                                         f"{exc}); {DAMAGED_FIX}") from None
            notes.append(f"{path.name} ends at byte {handle.tell()} without its summary (the recording was cut "
                         "off: a kill or a crash); the ticks up to its last complete chunk are kept")
