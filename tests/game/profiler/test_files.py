"""The profiler's files are written whole or not at all, and a failed write names the file."""

import json

import pytest

from game.profiler.report import write_report
from support.profiler import META, clock  # noqa: F401 (clock is a fixture)
from support.profiler_clock import scripted_session


def test_a_full_disk_leaves_no_half_written_report_and_names_the_file(tmp_path, clock, monkeypatch):
    import errno

    profiler = scripted_session(clock, warmup=1, frames=4)

    write_report(profiler, tmp_path, META, quiet=True)  # a previous, complete report
    import builtins

    import carla_bridge.core.files

    class FullDisk:  # the disk fills up half way through the file
        def __init__(self, path, *args, **kwargs):
            self.handle = builtins.open(path, *args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(carla_bridge.core.files, "open", FullDisk, raising=False)  # where atomic_file opens
    with pytest.raises(OSError, match=r"report\.json.*No space left on device.*another --report"):
        write_report(profiler, tmp_path, META, quiet=True)
    monkeypatch.undo()
    assert json.loads((tmp_path / "report.json").read_text())["frames"]["measured"] == 3  # still whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latency.png", "report.json", "trace.json"]
