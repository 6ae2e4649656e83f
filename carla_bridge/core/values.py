"""Type checks of values that come from users, files and the wire (WorldConfig fields, session records,
CARLA lease notes), shared so each says the same thing.

bool is an int to Python: without the explicit exclusion ``True`` passed as seed 1, ``[true, 64]`` as a
1x64 session size and ``"cut": 1`` as a cut. numpy's scalars count as numbers (an ``np.int64`` seed
from a numpy loop is a seed).
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def is_int(value: object) -> bool:
    """An integer (numpy's included), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_real(value: object, finite: bool = False) -> bool:
    """A real number (numpy's included), not a bool; with ``finite``, not NaN or infinite either."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    return not finite or math.isfinite(value)
