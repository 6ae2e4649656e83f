"""Which procedural seeds train and which evaluate: defined here once, used by the data sources and by
``neural_render.evaluate``.

Training seeds are drawn from [0, EVAL_SEED_BASE); test seeds, which every reported figure is
measured on, are EVAL_SEED_BASE + i; validation seeds, for choosing anything after training (the
fusion-mask calibration of ``neural_render.calibrate``), are VALIDATION_SEED_BASE + i. The three
ranges never meet, so a reported PSNR/SSIM/warping error is always measured on worlds (towns, routes,
traffic) that neither training nor any choice made after it has seen.
"""

from __future__ import annotations

import hashlib

EVAL_SEED_BASE = 1_000_000
"""Held-out procedural seeds are EVAL_SEED_BASE, EVAL_SEED_BASE + 1, ... and never used in training."""
VALIDATION_SEED_BASE = 2_000_000
"""Validation seeds: neither trained on nor reported; what post-training choices are fitted to."""
SPLITS = ("test", "validation")


def mix(*parts: int) -> int:
    """A stable 63-bit hash of integers (same on every machine, Python version and process)."""
    text = ",".join(str(int(p)) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def train_seed(base_seed: int, sample_index: int) -> int:
    """World seed for training sample ``sample_index`` of a run seeded with ``base_seed``."""
    seed = mix(base_seed, sample_index, 0x5EED) % EVAL_SEED_BASE
    assert seed < EVAL_SEED_BASE  # the held-out range is never touched
    return seed


def eval_seeds(count: int) -> list[int]:
    """The first ``count`` held-out evaluation seeds."""
    if count < 1:
        raise ValueError(f"--seeds must be at least 1, got {count}")
    return [EVAL_SEED_BASE + i for i in range(count)]


def split_seeds(split: str, count: int) -> list[int]:
    """The first ``count`` seeds of the ``test`` (= eval_seeds) or ``validation`` split."""
    if split not in SPLITS:
        raise ValueError(f"--split must be one of {SPLITS}, got {split!r}")
    if split == "test":
        return eval_seeds(count)
    if count < 1:
        raise ValueError(f"--seeds must be at least 1, got {count}")
    return [VALIDATION_SEED_BASE + i for i in range(count)]
