"""Training of the vid2vid generator: data sources (procedural world, recorded sessions,
Cityscapes-format video), augmentation, vid2vid losses and discriminators, the trainer loop, resume,
and torchrun multi-process training. Run it with ``python -m neural_render.train``.
"""

from __future__ import annotations

import importlib

# Loaded on first use (PEP 562), not here: ``python -m neural_render.train`` imports this package before
# its __main__ can take Ctrl+C, and importing torch here took seconds in which a Ctrl+C (torchrun
# forwards it to every rank) printed a KeyboardInterrupt traceback per rank.
_EXPORTS = {"RECIPES": "config", "LossWeights": "config", "TrainConfig": "config", "resolve": "config",
            "EVAL_SEED_BASE": "splits", "eval_seeds": "splits", "train_seed": "splits"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"neural_render.train.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
