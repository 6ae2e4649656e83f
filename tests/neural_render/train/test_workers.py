"""How a training data worker ends (neural_render/train/data.py, _worker_init): a native library
that aborts in its exit-time teardown must not turn a saved run's close into "DataLoader worker is
killed by signal: Aborted". Real spawned DataLoader workers, as the trainer starts them."""

import pytest
from torch.utils.data import DataLoader

from neural_render.train.data import _worker_init

# Imported by each worker when it unpickles the dataset, so its abort is registered before
# _worker_init's hook: it stands for a C++ thread pool torn down at exit, as on the 16-core GPU machine.
ABORTING_DATASET = """
import atexit, multiprocessing, os

if multiprocessing.current_process().name != "MainProcess":  # in the workers only, not the test process
    atexit.register(os.abort)


class Items:
    def __len__(self):
        return 4

    def __getitem__(self, index):
        return index
"""


def _close_workers(tmp_path, monkeypatch, worker_init) -> tuple[list, str]:
    """Run two spawned workers through a DataLoader and shut them down as the trainer does; returns
    their exit codes and torch's complaint about them, if any."""
    (tmp_path / "aborting_dataset.py").write_text(ABORTING_DATASET)
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers inherit the path
    import aborting_dataset

    loader = DataLoader(aborting_dataset.Items(), batch_size=2, num_workers=2, multiprocessing_context="spawn",
                        persistent_workers=True, worker_init_fn=worker_init)
    batches = iter(loader)
    assert [batch.tolist() for batch in batches] == [[0, 1], [2, 3]]
    workers, complaint = list(batches._workers), ""
    try:
        batches._shutdown_workers()  # what the trainer's DataLoader does when the run ends
        for worker in workers:
            worker.join(30)
    except RuntimeError as error:  # torch's SIGCHLD handler: "DataLoader worker ... is killed by signal"
        complaint = str(error)
        for worker in workers:
            worker.join(30)
    return [worker.exitcode for worker in workers], complaint


def test_workers_leave_before_an_aborting_native_teardown(tmp_path, monkeypatch):
    assert _close_workers(tmp_path, monkeypatch, _worker_init) == ([0, 0], "")


def test_without_the_hook_the_same_workers_abort(tmp_path, monkeypatch):
    """The stand-in really aborts: the test above would pass vacuously if it did not. Either torch says
    so (the message seen on the H200) or an exit code does; which one wins the race varies."""
    codes, complaint = _close_workers(tmp_path, monkeypatch, None)
    assert "killed by signal: Aborted" in complaint or any(code not in (0, None) for code in codes), codes


@pytest.fixture(autouse=True)
def _forget_the_stand_in_module():
    import sys

    yield
    sys.modules.pop("aborting_dataset", None)  # each test writes its own copy under its tmp_path
