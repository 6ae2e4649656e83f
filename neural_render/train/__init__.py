"""Training of the vid2vid generator: data sources (procedural world, recorded sessions,
Cityscapes-format video), augmentation, vid2vid losses and discriminators, the trainer loop, resume,
and torchrun multi-process training. Run it with ``python -m neural_render.train``.

Imports nothing itself: ``python -m neural_render.train`` imports this package before its __main__ can
take Ctrl+C, and a torch import here would print a KeyboardInterrupt traceback per torchrun rank.
"""
