"""Training of the vid2vid generator (issue 8): data sources (procedural world, recorded sessions,
Cityscapes-format video), augmentation, vid2vid losses and discriminators, the trainer loop, resume,
and torchrun multi-process training. Run it with ``python -m neural_render.train``.
"""

from neural_render.train.config import RECIPES, LossWeights, TrainConfig, resolve
from neural_render.train.splits import EVAL_SEED_BASE, eval_seeds, train_seed

__all__ = ["EVAL_SEED_BASE", "RECIPES", "LossWeights", "TrainConfig", "eval_seeds", "resolve", "train_seed"]
