"""How a training data worker ends (neural_render/train/data.py, _worker_init): a native library
that aborts in its exit-time teardown must not turn a saved run's close into "DataLoader worker is
killed by signal: Aborted", and what the worker printed must still come out."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# atexit runs its handlers last-registered first: this abort stands for a C++ thread pool torn down
# after the worker's hook has run, as on the 16-core GPU machine where it was seen.
WORKER = """
import atexit, os
atexit.register(os.abort)
from neural_render.train.data import _worker_init
_worker_init(0)
print("clip ready")
"""


def test_a_worker_leaves_before_an_aborting_native_teardown_and_keeps_its_output():
    # stdout is a pipe here, so the print sits in a buffer: lost unless the hook flushes before leaving
    done = subprocess.run([sys.executable, "-c", WORKER], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout == "clip ready\n"


def test_without_the_worker_hook_the_same_process_aborts():
    """The stand-in above really aborts: the first test would pass vacuously if it did not."""
    plain = WORKER.replace("_worker_init(0)", "")
    done = subprocess.run([sys.executable, "-c", plain], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
