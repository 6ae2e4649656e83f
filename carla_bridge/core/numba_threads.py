"""One numba thread for tools that render the procedural world in the same process as torch.

The world's numba thread pool spins after each render and starves torch's threads (measured on the
2-core box by ``neural_render.evaluate``: 4.8 s per frame with numba's default pool, 0.17 s with one
thread). ``NUMBA_NUM_THREADS`` sizes that pool, so it must be set before numba is imported.

Once numba is loaded it must not change: numba rereads the environment each time it compiles a
function and raises ``RuntimeError: Cannot set NUMBA_NUM_THREADS to a different value once the threads
have been launched``. That bit a test process whose numba cache was cold (CI): an earlier import had
loaded numba, a tool's ``main`` then set the variable, and the first compile failed.
"""

from __future__ import annotations

import os
import sys


def prefer_one_numba_thread() -> bool:
    """Ask for one numba thread unless numba is already loaded or the environment says otherwise.

    Returns whether the pool will have one thread because of this call."""
    if "numba" in sys.modules or "NUMBA_NUM_THREADS" in os.environ:
        return False
    os.environ["NUMBA_NUM_THREADS"] = "1"
    return True
