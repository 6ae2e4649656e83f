"""Damaged copies of a generator checkpoint, for the checkpoint tests and the fault suite: every way a
weights file can be wrong, each made from a sound tiny checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from neural_render.checkpoint import save_generator
from neural_render.model import build_generator


def tiny_checkpoint(path: Path) -> Path:
    torch.manual_seed(3)
    return save_generator(build_generator("tiny").eval(), path)


def resaved(path: Path, out: Path, edit_state=None, edit_metadata=None) -> Path:
    """A copy of checkpoint ``path`` at ``out`` with its tensors changed by ``edit_state(state)`` and its
    metadata (a dict of strings) by ``edit_metadata(metadata)``."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
    state = load_file(str(path))
    if edit_state:
        edit_state(state)
    if edit_metadata:
        edit_metadata(metadata)
    save_file(state, str(out), metadata=metadata)
    return out


def with_config(path: Path, out: Path, **fields) -> Path:
    """A copy of ``path`` whose config metadata has ``fields`` replaced; its tensors are left as they were."""
    def edit(metadata):
        metadata["config"] = json.dumps({**json.loads(metadata["config"]), **fields})
    return resaved(path, out, edit_metadata=edit)


def damaged_checkpoints(sound: Path, folder: Path) -> dict[str, Path]:
    """One damaged copy of the checkpoint ``sound`` per kind of damage, written under ``folder``."""
    data = sound.read_bytes()
    truncated = folder / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = folder / "garbage.safetensors"
    garbage.write_bytes(bytes(range(256)) * 16)
    first = next(iter(build_generator("tiny").state_dict()))

    def set_config(metadata, text):
        metadata["config"] = text
    return {
        "truncated": truncated,
        "garbage": garbage,
        "missing tensor": resaved(sound, folder / "missing.safetensors", edit_state=lambda s: s.pop(first)),
        "wrong shape": resaved(sound, folder / "reshaped.safetensors",
                               edit_state=lambda s: s.update({first: torch.zeros(1, 1, 1, 1)})),
        "negative widths": with_config(sound, folder / "negative.safetensors", widths=[8, -4]),
        "huge widths": with_config(sound, folder / "huge.safetensors", widths=[200000, 200000],
                                   flow_widths=[200000, 200000]),
        # in range, yet a network far bigger than the tensors in the file: caught before it is built
        "widths the tensors do not fill": with_config(sound, folder / "unfilled.safetensors",
                                                      widths=[4096, 4096], flow_widths=[4096, 4096]),
        "non-JSON config": resaved(sound, folder / "nonjson.safetensors",
                                   edit_metadata=lambda m: set_config(m, "{widths: [8, 8")),
        "config not an object": resaved(sound, folder / "list.safetensors",
                                        edit_metadata=lambda m: set_config(m, "[8, 8]")),
    }
