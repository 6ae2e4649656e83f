"""CARLA sensor byte formats <-> our arrays (ARCHITECTURE.md, "Conventions").

Decoders turn the raw bytes of CARLA 0.9.16 cameras into SceneFrame arrays; the encoders are their
exact inverses and are what the stand-in server (carla_bridge/standin) sends, so a round trip through
the real ``carla`` client is lossless up to the formats' own quantisation.

Formats (CARLA docs, ref_sensors):
- semantic segmentation: BGRA uint8, the tag id in the red channel (byte 2 of each pixel); a tag
  outside 0..28 decodes as Unlabeled and is counted.
- depth: BGRA uint8, normalized = (R + G*256 + B*256^2) / (256^3 - 1), metres = 1000 * normalized.
- optical flow: 2 float32 per pixel (x, y), "in the range [-2, 2]".
- rgb: BGRA uint8.

Optical flow convention. Unreal's velocity buffer, which the CARLA optical-flow camera reads
(carla PR 4104), stores the screen-space motion of a pixel from the previous frame to this one in
normalised device coordinates: x to the right, y UP, and the image spans 2 NDC units per side (hence
the [-2, 2] range: at most one image size either way). Measurements in carla issue 4795 agree: pixels =
value * size / 2, with the y axis flipped. Our convention is BACKWARD flow in pixels with y down
(frames.SceneFrame.flow): where the surface point of pixel (x, y) was in the previous frame. Forward
motion prev -> now in pixels is (+fx * W/2, -fy * H/2), so backward flow is (-fx * W/2, +fy * H/2).
The upstream direction/sign convention is disputed (issue 4795), so the whole sign choice lives in
CARLA_FLOW_SIGN below: if a CARLA build turns out to differ, change that one constant.
"""

from __future__ import annotations

import numpy as np

from carla_bridge.core.labels import NUM_LABELS, TAG

CARLA_FLOW_SIGN: tuple[float, float] = (-1.0, 1.0)
"""Per-axis factor from CARLA's optical-flow value (scaled to pixels) to our backward flow (x, y).

(-1, +1): CARLA gives forward motion in NDC with y up; negating x and keeping y (whose up-axis flip
cancels the forward->backward negation) gives backward flow with y down. See the module docstring."""

CARLA_FLOW_NDC_SPAN = 2.0
"""NDC units across one image side: a CARLA flow value of 2.0 is one full image width/height."""

DEPTH_FAR_M = 1000.0
"""The CARLA depth camera's far plane: normalised depth 1.0 is 1000 m."""

_DEPTH_SCALE = float(256**3 - 1)


def _pixels(raw: bytes | bytearray | memoryview | np.ndarray, width: int, height: int, channels: int,
            dtype: type, name: str) -> np.ndarray:
    """View ``raw`` as (height, width, channels) of ``dtype``, with a clear error on a size mismatch."""
    buffer = raw if isinstance(raw, np.ndarray) else np.frombuffer(raw, dtype=np.uint8)
    buffer = buffer.reshape(-1).view(np.uint8)
    expected = width * height * channels * np.dtype(dtype).itemsize
    if buffer.size != expected:
        raise ValueError(
            f"{name}: raw data holds {buffer.size} bytes, expected {expected} for "
            f"{width}x{height} with {channels} x {np.dtype(dtype).name} per pixel"
        )
    return buffer.view(dtype).reshape(height, width, channels)


# ----------------------------------------------------------------------------- semantic segmentation
def decode_semantic(raw, width: int, height: int) -> tuple[np.ndarray, int]:
    """BGRA bytes of ``sensor.camera.semantic_segmentation`` -> ((H, W) uint8 tag ids from the red
    channel, how many pixels held a tag outside 0..28). A custom asset can carry a tag CARLA's table
    lacks (CARLA's own ColorConverter.h wraps it, ``tag % 29``); here it becomes Unlabeled (0), so that
    one stray pixel never ends a drive, and the count says it happened."""
    labels = np.ascontiguousarray(_pixels(raw, width, height, 4, np.uint8, "semantic image")[:, :, 2])
    unknown = labels >= NUM_LABELS
    count = int(np.count_nonzero(unknown))
    if count:
        labels[unknown] = TAG["Unlabeled"]
    return labels, count


def encode_semantic(labels: np.ndarray) -> bytes:
    """(H, W) uint8 tag ids -> BGRA bytes with the tag in R (what CARLA's semantic camera sends)."""
    labels = np.asarray(labels, dtype=np.uint8)
    bgra = np.zeros(labels.shape + (4,), dtype=np.uint8)
    bgra[:, :, 2] = labels
    bgra[:, :, 3] = 255
    return bgra.tobytes()


# ----------------------------------------------------------------------------- depth
def decode_depth(raw, width: int, height: int) -> np.ndarray:
    """BGRA bytes of ``sensor.camera.depth`` -> (H, W) float32 metres (24-bit fixed point over 1 km)."""
    bgra = _pixels(raw, width, height, 4, np.uint8, "depth image").astype(np.float64)
    normalized = (bgra[:, :, 2] + bgra[:, :, 1] * 256.0 + bgra[:, :, 0] * 65536.0) / _DEPTH_SCALE
    return (DEPTH_FAR_M * normalized).astype(np.float32)


def encode_depth(depth_m: np.ndarray) -> bytes:
    """(H, W) metres -> CARLA depth BGRA bytes; depth beyond 1000 m (or inf, the sky) saturates."""
    depth = np.nan_to_num(np.asarray(depth_m, dtype=np.float64), nan=DEPTH_FAR_M, posinf=DEPTH_FAR_M)
    code = np.rint(np.clip(depth / DEPTH_FAR_M, 0.0, 1.0) * _DEPTH_SCALE).astype(np.uint32)
    bgra = np.empty(depth.shape + (4,), dtype=np.uint8)
    bgra[:, :, 2] = code & 0xFF
    bgra[:, :, 1] = (code >> 8) & 0xFF
    bgra[:, :, 0] = (code >> 16) & 0xFF
    bgra[:, :, 3] = 255
    return bgra.tobytes()


# ----------------------------------------------------------------------------- optical flow
def _flow_factors(width: int, height: int) -> np.ndarray:
    """Per-axis factor CARLA flow value -> our backward pixel flow (sign * size / NDC span)."""
    return np.array(
        [CARLA_FLOW_SIGN[0] * width / CARLA_FLOW_NDC_SPAN, CARLA_FLOW_SIGN[1] * height / CARLA_FLOW_NDC_SPAN],
        dtype=np.float32,
    )


def carla_flow_to_backward_pixels(carla_flow: np.ndarray) -> np.ndarray:
    """THE conversion: CARLA optical flow (H, W, 2) in [-2, 2] -> our backward flow in pixels.

    backward[..., 0] = CARLA_FLOW_SIGN[0] * fx * W / 2,  backward[..., 1] = CARLA_FLOW_SIGN[1] * fy * H / 2
    (module docstring for why). Returns float32 (H, W, 2); non-finite values become 0 so the renderer's
    NaN check never trips on an engine glitch.
    """
    carla_flow = np.asarray(carla_flow, dtype=np.float32)
    if carla_flow.ndim != 3 or carla_flow.shape[2] != 2:
        raise ValueError(f"CARLA optical flow must be (H, W, 2), got {carla_flow.shape}")
    height, width = carla_flow.shape[:2]
    flow = carla_flow * _flow_factors(width, height)
    return np.nan_to_num(flow, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32, copy=False)


def backward_pixels_to_carla_flow(flow_px: np.ndarray) -> np.ndarray:
    """Inverse of :func:`carla_flow_to_backward_pixels` (what the stand-in's flow camera sends)."""
    flow_px = np.asarray(flow_px, dtype=np.float32)
    if flow_px.ndim != 3 or flow_px.shape[2] != 2:
        raise ValueError(f"backward flow must be (H, W, 2), got {flow_px.shape}")
    height, width = flow_px.shape[:2]
    return (flow_px / _flow_factors(width, height)).astype(np.float32)


def decode_flow(raw, width: int, height: int) -> np.ndarray:
    """Raw bytes of ``sensor.camera.optical_flow`` (2 float32 per pixel) -> backward flow in pixels."""
    return carla_flow_to_backward_pixels(_pixels(raw, width, height, 2, np.float32, "optical flow image"))


def encode_flow(flow_px: np.ndarray) -> bytes:
    """Backward flow in pixels -> the CARLA optical-flow camera's raw bytes (2 x float32 LE)."""
    return backward_pixels_to_carla_flow(flow_px).astype("<f4").tobytes()


# ----------------------------------------------------------------------------- rgb
def decode_rgb(raw, width: int, height: int) -> np.ndarray:
    """BGRA bytes of ``sensor.camera.rgb`` -> (H, W, 3) uint8 RGB."""
    return np.ascontiguousarray(_pixels(raw, width, height, 4, np.uint8, "rgb image")[:, :, 2::-1])


def encode_rgb(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB -> BGRA bytes with opaque alpha."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    bgra = np.empty(rgb.shape[:2] + (4,), dtype=np.uint8)
    bgra[:, :, :3] = rgb[:, :, ::-1]
    bgra[:, :, 3] = 255
    return bgra.tobytes()
