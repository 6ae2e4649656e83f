"""A minimal PNG writer (zlib + struct only) so sample strips are written on GPU machines that carry
torch and numpy but no imaging library."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from carla_bridge.core.files import write_atomic


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB image as an 8-bit PNG (filter type 0 on every row)."""
    image = np.ascontiguousarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"write_png needs an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    height, width, _ = image.shape
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6))
    data += _chunk(b"IEND", b"")
    return write_atomic(path, data)  # whole or not at all, nothing left behind on failure
