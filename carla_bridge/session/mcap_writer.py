"""Write a session as an MCAP file (layout: mcap_format.py) with the ``mcap`` package's chunked writer.

Crash consistency: the writer collects messages in a chunk in memory and writes the chunk, compressed
and followed by its message indexes, once it holds more than CHUNK_BYTES; each tick's
messages go to the OS (flush) right after they are added. So a kill -9 loses at most the unfinished
chunk, i.e. under CHUNK_BYTES of messages (about 2 ticks at 256x128, 1 at 512x256, where a tick is
0.6 or 2.3 MB), besides the ticks still in the recorder's queue, as with the folder format. The summary
(chunk index, statistics) is written at the close; a file without it is read linearly (mcap_reader.py).

Compression: a drive records with LZ4, an export with zstd. On a 1.5 MB chunk of procedural-world ticks
at 256x128 (2-core CPU) zstd's default level took 7.2 ms and shrank it 2.67x, LZ4 1.9 ms and 1.68x: on
a drive the writer thread takes its CPU from the renderer, so the drive pays for the cheaper codec with a
file 1.6x larger; an export has no frame deadline. Foxglove and the ``mcap`` reader read both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

from mcap.writer import CompressionType, Writer

from carla_bridge.session.format import project_version, render_digest
from carla_bridge.session.mcap_format import (CLOSE_META_NAME, META_NAME, STREAMS, encode_meta, encode_tick,
                                              log_time_ns)
from carla_bridge.session.writer import FramePacket, PacketWriter

CHUNK_BYTES = 1 << 20  # the mcap writer's default: the most a kill -9 costs, see above


class McapSessionFile:
    """An MCAP file being written to ``file`` (open for binary writing; closed by ``close``): channels
    registered on first use, the meta record first."""

    def __init__(self, file: BinaryIO, meta: dict[str, Any], chunk_bytes: int = CHUNK_BYTES,
                 compression: CompressionType = CompressionType.ZSTD) -> None:
        self._file = file
        self._writer = Writer(self._file, chunk_size=chunk_bytes, compression=compression)
        self._writer.start(profile="", library=f"neural-drive {project_version()}")
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._writer.add_metadata(META_NAME, encode_meta(meta))
        self._file.flush()

    def write_tick(self, record: dict[str, Any], messages: list[tuple[str, bytes]]) -> None:
        """Add one tick's messages (encode_tick) and hand whatever chunk is complete to the OS."""
        time_ns = log_time_ns(record["time_s"])
        for topic, payload in messages:
            self._writer.add_message(self._channel(topic), log_time=time_ns, data=payload,
                                     publish_time=time_ns, sequence=record["position"])
        self._file.flush()

    def close(self, closing_meta: dict[str, Any] | None = None) -> None:
        """Write the last chunk, the closing meta (when given) and the summary; close the file."""
        if closing_meta is not None:
            self._writer.add_metadata(CLOSE_META_NAME, encode_meta(closing_meta))
        self._writer.finish()
        self._file.close()

    def _channel(self, topic: str) -> int:
        channel = self._channels.get(topic)
        if channel is None:
            stream = STREAMS[topic]
            schema = self._schemas.get(stream.schema_name)
            if schema is None:
                schema = self._writer.register_schema(stream.schema_name, stream.schema_encoding,
                                                      stream.schema_data)
                self._schemas[stream.schema_name] = schema
            channel = self._writer.register_channel(topic, stream.message_encoding, schema)
            self._channels[topic] = channel
        return channel


class McapSessionWriter(PacketWriter):
    """The recorder's writer thread for ``--record-format mcap`` (writer.py: why a thread)."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        super().__init__(path.parent, path.name)
        # "x": a session is never overwritten; LZ4: the module docstring says why
        self.file = McapSessionFile(open(path, "xb"), meta, compression=CompressionType.LZ4)

    def _write_files(self, packet: FramePacket) -> None:
        record = packet.record
        if packet.render is not None:
            record["render"] = render_digest(packet.render)
        record["video"] = {}  # no mp4 beside an MCAP file: its /render and /engine are the viewing copies
        self.file.write_tick(record, encode_tick(record, packet.arrays, packet.render, packet.engine))
        self.frames_written += 1

    def save_meta(self, meta: dict[str, Any]) -> None:
        self.file.close(closing_meta=meta)
