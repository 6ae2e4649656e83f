"""The tools ask numba for one thread only while that is still safe: before numba loads, and never
over an explicit NUMBA_NUM_THREADS (changing it after numba launched its threads fails the next compile,
as it did in CI with a cold numba cache)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _python(code: str, **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_before_numba_loads_the_pool_gets_one_thread():
    code = ("from carla_bridge.core.numba_threads import prefer_one_numba_thread as p; asked = p();"
            "import numba; print(asked, numba.config.NUMBA_NUM_THREADS)")
    assert _python(code) == ["True", "1"]


def test_an_explicit_setting_wins():
    code = ("from carla_bridge.core.numba_threads import prefer_one_numba_thread as p; asked = p();"
            "import numba; print(asked, numba.config.NUMBA_NUM_THREADS)")
    assert _python(code, NUMBA_NUM_THREADS="2") == ["False", "2"]


def test_once_numba_runs_its_threads_the_setting_is_left_alone_and_compiling_still_works():
    # The CI failure: numba loaded with its default pool, threads launched, a tool's main then asked
    # for one thread, and the next compile raised "Cannot set NUMBA_NUM_THREADS to a different value".
    code = ("import os, numba; numba.set_num_threads(1);"
            "from carla_bridge.core.numba_threads import prefer_one_numba_thread as p; asked = p();"
            "print(asked, os.environ.get('NUMBA_NUM_THREADS', 'unset'), numba.njit(lambda x: x + 1)(1))")
    assert _python(code) == ["False", "unset", "2"]
