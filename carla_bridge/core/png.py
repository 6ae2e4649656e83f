"""PNG encoding with zlib and struct alone, per the PNG spec (RFC 2083), filter type 0 on every row.

Label maps are large flat regions that zlib alone compresses to a few kB: for them this is ~5x less CPU
than Pillow's encoder with its per-row filter search, and the session writer runs it every tick. It
also writes the training's sample strips on GPU machines that carry torch and numpy but no imaging
library.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from carla_bridge.core.files import write_atomic

_COLOR_TYPES = {2: 0, 3: 2}  # array rank -> PNG colour type: greyscale (H, W), RGB (H, W, 3)


def encode_png(image: np.ndarray, level: int = 1) -> bytes:
    """(H, W) or (H, W, 3) uint8 -> the bytes of an 8-bit PNG, compressed at zlib ``level``."""
    if image.dtype != np.uint8 or image.ndim not in _COLOR_TYPES or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"a PNG takes an (H, W) or (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    rows = np.zeros((height, 1 + image[0].size), dtype=np.uint8)  # each scanline: its filter byte, 0
    rows[:, 1:] = image.reshape(height, -1)
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[image.ndim], 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
            + _chunk(b"IEND", b""))


def write_png(path: str | Path, image: np.ndarray, level: int = 6) -> Path:
    """``encode_png`` written to ``path`` whole or not at all."""
    return write_atomic(path, encode_png(image, level))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
