"""The session folder format: file names, the session.json schema and version, one frames.jsonl record.

A session is a folder:

    session.json        format_version (int), project_version, git_commit, started_at, size [w, h], fps,
                        record {rgb, flow, depth, video, writer}, plus the caller's meta (model, model_sha256,
                        backend, device, precision, source, source_settings, seed). Written at the start
                        and rewritten atomically at close with frames, ended_at, closed, error, ended_by
                        (why the recording ended before it was stopped: "disk full", "source lost: ...").
    .session.json.reserve  room kept for that rewrite while recording (recorder.py); gone at the close.
    frames.jsonl        one JSON object per tick (FrameRecord), appended and flushed only after every
                        file of that tick is in place, so it is the source of truth after a crash.
    labels/000000.png   8-bit grey PNG of tag ids (lossless).
    flow/000000.npy     float32 (H, W, 2) backward flow in pixels (lossless: replay feeds the renderer
                        exactly what it saw while driving).
    depth/000000.npy    float32 (H, W) metres, when recorded.
    rgb/000000.png      8-bit RGB PNG of the engine image, with record_rgb=True (training data).
    render.mp4          H.264 yuv420p of the neural render (lossy; a viewing copy, not the truth).
    engine.mp4          H.264 of the engine rgb, when the source has it.

Compatibility rule: readers accept format_version <= FORMAT_VERSION and ignore unknown keys, so adding a
key keeps the version; changing or removing one bumps it.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from carla_bridge.core.files import atomic_file
from carla_bridge.core.values import is_int, is_real

FORMAT_VERSION = 1
SESSION_JSON = "session.json"
FRAMES_JSONL = "frames.jsonl"
RENDER_MP4 = "render.mp4"
ENGINE_MP4 = "engine.mp4"
CLOSE_RESERVE = ".session.json.reserve"
DISK_FULL = "disk full"  # session.json's ended_by when the disk filled up while recording
MCAP_SUFFIX = ".mcap"  # a session in one MCAP file (mcap_format.py) rather than a folder
# Per-frame files: kind -> (folder, suffix). The record's "files" list names the kinds present.
FRAME_FILES: dict[str, tuple[str, str]] = {
    "labels": ("labels", ".png"),
    "flow": ("flow", ".npy"),
    "depth": ("depth", ".npy"),
    "rgb": ("rgb", ".png"),
}
# Keys the recorder owns in session.json; the caller's meta cannot override them.
RESERVED_KEYS = (
    "format_version", "project_version", "git_commit", "started_at", "ended_at", "size", "fps",
    "record", "frames", "closed", "error", "ended_by", "video", "notes",
)
# The render digest thumbnail: block means over at most THUMB_W x THUMB_H cells (see render_digest).
THUMB_W, THUMB_H = 16, 8
# The checkout this file is in (carla_bridge/session/format.py), for its git commit and pyproject.toml.
REPO_ROOT = Path(__file__).resolve().parents[2]


# What MCAP sessions need (mcap_format.py): the `mcap` extra of pyproject.toml.
MCAP_MODULES = ("mcap", "foxglove", "google.protobuf")
MCAP_INSTALL = "pip install 'neural-drive[mcap]' (the mcap, foxglove-sdk and protobuf packages)"


def mcap_problem() -> str | None:
    """None when MCAP sessions can be written and read here; otherwise what is missing and how to get it."""
    missing = [name for name in MCAP_MODULES if importlib.util.find_spec(name.split(".")[0]) is None
               or importlib.util.find_spec(name) is None]
    return None if not missing else f"MCAP sessions need {', '.join(missing)}: {MCAP_INSTALL}"


class SessionFormatError(ValueError):
    """A folder that is not a session, a session from a newer format, or a missing/corrupt file."""


def frame_file(directory: Path, kind: str, position: int) -> Path:
    """Path of the ``kind`` file ('labels', 'flow', 'depth', 'rgb') of the session's ``position``-th line.

    Files are numbered by position in frames.jsonl (0, 1, 2...), not by the source's tick index, so a
    recording started mid-drive still begins at 000000.
    """
    folder, suffix = FRAME_FILES[kind]
    return Path(directory) / folder / f"{position:06d}{suffix}"


def atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to ``path`` whole, synced to the disk: a crash or a full disk leaves the previous file."""
    with atomic_file(path, "w", durable=True) as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


def project_version() -> str:
    """The installed package's version; from a checkout that is not installed, its pyproject.toml's."""
    try:
        return importlib.metadata.version("neural-drive")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    except (OSError, tomllib.TOMLDecodeError, KeyError):
        return "unknown"


def git_commit() -> str | None:
    """The repository's HEAD commit (with '-dirty' when the tree has changes), or None outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=5,
        )
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def file_sha256(path: str | Path) -> str | None:
    """sha256 of a file (the model weights), or None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def render_digest(image: np.ndarray) -> dict[str, Any]:
    """A small fingerprint of a rendered frame for the replay determinism check.

    sha256 (first 16 hex digits) of the exact bytes, and a thumbnail of block means (at most 16x8 cells,
    uint8, base64) so that a replay on another run of the same model/backend/device can be compared with a
    tolerance in grey levels even when it is not bit-exact (GPU kernels may choose other algorithms).
    The mp4 cannot serve: H.264 is lossy.
    """
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    cells_w, cells_h = min(THUMB_W, w), min(THUMB_H, h)
    bw, bh = w // cells_w, h // cells_h
    crop = image[: bh * cells_h, : bw * cells_w].reshape(cells_h, bh, cells_w * bw, -1)
    # Two integer sums instead of one mean over axes (1, 3): 15x faster, and exact.
    sums = crop.sum(axis=1, dtype=np.uint32).reshape(cells_h, cells_w, bw, -1).sum(axis=2)
    count = bw * bh
    thumb = ((sums + count // 2) // count).astype(np.uint8)
    return {
        "sha256": hashlib.sha256(image.tobytes()).hexdigest()[:16],
        "thumb": base64.b64encode(thumb.tobytes()).decode("ascii"),
        "thumb_shape": list(thumb.shape),
    }


def digest_thumb(digest: dict[str, Any]) -> np.ndarray:
    """Decode the thumbnail of a render_digest back to a uint8 array."""
    raw = base64.b64decode(digest["thumb"])
    return np.frombuffer(raw, dtype=np.uint8).reshape(digest["thumb_shape"])


def check_meta(meta: Any, where: Path) -> dict[str, Any]:
    """Validate a loaded session.json; raise SessionFormatError naming the problem and the file."""
    if not isinstance(meta, dict):
        raise SessionFormatError(f"{where}: expected a JSON object, got {type(meta).__name__}")
    version = meta.get("format_version")
    if not is_int(version):
        raise SessionFormatError(f"{where}: 'format_version' must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise SessionFormatError(
            f"{where}: session format version {version} is newer than this neural-drive reads "
            f"({FORMAT_VERSION}); update neural-drive (project version {project_version()}) to replay it"
        )
    if version < 1:
        raise SessionFormatError(f"{where}: 'format_version' must be >= 1, got {version}")
    size = meta.get("size")
    # bool is an int to Python: [true, 64] is no size, not a 1x64 session that fails at its first frame
    if not (isinstance(size, list) and len(size) == 2
            and all(is_int(v) and v > 0 for v in size)):
        raise SessionFormatError(f"{where}: 'size' must be [width, height] in pixels, got {size!r}")
    for key in ("fps", "delta_s"):  # the export's video rate: 0, a string or NaN would fail deep in ffmpeg
        _check_positive(meta, key, where)
    return meta


def _check_positive(meta: dict[str, Any], key: str, where: Path) -> None:
    """``meta[key]`` is a positive finite number, or absent/null (delta_s is null for a source without a
    fixed step)."""
    value = meta.get(key)
    if value is None:
        return
    if not (is_real(value, finite=True) and value > 0):
        raise SessionFormatError(f"{where}: '{key}' must be a positive number, got {value!r}")
