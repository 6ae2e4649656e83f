"""Recorded sessions: record a drive to a folder, replay it as a Source.

    with SessionRecorder("sessions/run1", meta, size=(512, 256)) as rec:
        rec.add(frame, control, rendered, {"source": 3.1, "inference": 12.0})
    for frame in ReplaySource("sessions/run1"): ...

Format and versioning: format.py. Back-pressure: recorder.py. Writing a tick, crash consistency and the
writer thread: writer.py. Reading a folder back: reader.py. ffmpeg viewing copies: video.py. Recording
overhead: game/bench/recording.py.
"""

from carla_bridge.session.format import FORMAT_VERSION, SessionFormatError, digest_thumb, render_digest
from carla_bridge.session.reader import SessionIndex, load_frame, open_session
from carla_bridge.session.recorder import SessionRecorder
from carla_bridge.session.replay import ReplaySource, SessionEnded, resize_frame

__all__ = [
    "FORMAT_VERSION", "ReplaySource", "SessionEnded", "SessionFormatError", "SessionIndex",
    "SessionRecorder", "digest_thumb", "load_frame", "open_session",
    "render_digest", "resize_frame",
]
