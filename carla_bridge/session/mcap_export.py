"""A session folder converted to an MCAP file: ``python -m carla_bridge.session export-mcap SESSION OUT.mcap``.

Every lossless stream goes across bit for bit (labels, flow, depth, rgb PNGs) with the records and the
meta, so the MCAP file replays as the folder does. The mp4 viewing copies are left out: they are lossy,
and the file's /labels/colour and /engine (when the session has rgb) show the drive in Foxglove.
"""

from __future__ import annotations

from pathlib import Path

from carla_bridge.core.files import atomic_path
from carla_bridge.session.mcap_format import encode_tick
from carla_bridge.session.mcap_writer import McapSessionFile
from carla_bridge.session.reader import load_frame, open_session


def export_mcap(session_dir: str | Path, out: str | Path) -> int:
    """Write the session folder ``session_dir`` to ``out`` whole or not at all; return the frames written.
    Raises SessionFormatError for a bad session (nothing is written then)."""
    index = open_session(session_dir)
    with atomic_path(out) as tmp:
        mcap = McapSessionFile(open(tmp, "wb"), index.meta)
        for position, source in enumerate(index.records):
            frame = load_frame(index, position)
            arrays = {kind: getattr(frame, kind) for kind in source["files"]}
            record = {key: value for key, value in source.items() if key != "topics"}
            mcap.write_tick(record, encode_tick(record, arrays, None, None))
        mcap.close()
    return len(index.records)
