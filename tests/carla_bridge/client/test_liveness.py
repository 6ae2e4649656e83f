"""Whether a drive's process still runs, and the lock between drives, on every platform. The Windows
paths are checked against a fake Win32 API: os.kill(pid, 0) there sends Ctrl+C instead of probing."""

from __future__ import annotations

import errno
import subprocess
import sys
from types import SimpleNamespace

import pytest
from support.carla import who_held_first

from carla_bridge.client import liveness as process_liveness
from carla_bridge.client.liveness import STILL_ACTIVE, exclusive_lock, process_alive, process_start

CREATED = (0x01DB_0000 << 32) | 0x1234_5678  # a FILETIME


class FakeKernel32:
    """Enough of kernel32 for one process ``pid`` that runs (or has exited with ``exit_code``)."""

    def __init__(self, pid: int, exit_code: int = STILL_ACTIVE, open_fails: bool = False) -> None:
        self.pid, self.exit_code, self.open_fails = pid, exit_code, open_fails
        self.closed: list[int] = []

    def OpenProcess(self, access, inherit, pid):  # noqa: N802 (the Win32 name)
        assert access == process_liveness.PROCESS_QUERY_LIMITED_INFORMATION and not inherit
        return 0 if self.open_fails or pid != self.pid else 777

    def GetExitCodeProcess(self, handle, code_ref):  # noqa: N802
        code_ref._obj.value = self.exit_code
        return 1

    def GetProcessTimes(self, handle, created_ref, *others):  # noqa: N802
        created_ref._obj.dwHighDateTime, created_ref._obj.dwLowDateTime = CREATED >> 32, CREATED & 0xFFFF_FFFF
        return 1

    def CloseHandle(self, handle):  # noqa: N802
        self.closed.append(handle)
        return 1


@pytest.mark.parametrize(("kernel32", "last_error", "expected"), [
    (FakeKernel32(42), 0, (True, CREATED)),
    (FakeKernel32(42, exit_code=1), 0, (False, CREATED)),
    (FakeKernel32(43), 87, (False, None)),                   # ERROR_INVALID_PARAMETER: no such process
    (FakeKernel32(42, open_fails=True), 5, (True, None)),    # ERROR_ACCESS_DENIED: another user's, running
], ids=["running", "exited", "gone", "another-user"])
def test_windows_query_reads_exit_code_and_creation_time(kernel32, last_error, expected):
    assert process_liveness._windows_query(42, kernel32, lambda: last_error) == expected
    assert kernel32.closed == ([777] if expected[1] is not None else [])  # every handle opened is closed


def test_windows_never_probes_with_os_kill(monkeypatch):
    """Signal 0 is CTRL_C_EVENT on Windows: os.kill(pid, 0) would interrupt the drive it asks about."""
    kernel32 = FakeKernel32(42)
    monkeypatch.setattr(process_liveness, "WINDOWS", True)
    monkeypatch.setattr(process_liveness, "_kernel32", lambda: kernel32)
    monkeypatch.setattr(process_liveness.os, "kill", lambda *a: pytest.fail("os.kill on Windows"))
    assert process_start(42) == CREATED
    assert process_alive(42, CREATED) and process_alive(42, None)
    assert not process_alive(42, CREATED + 1)  # the pid now belongs to a process started later
    kernel32.exit_code = 0
    assert not process_alive(42, CREATED)


def test_a_running_child_is_alive_until_it_ends():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = process_start(child.pid)
        assert process_alive(child.pid, start)
        if start is not None:
            assert not process_alive(child.pid, start + 1)
    finally:
        child.kill()
        child.wait()
    assert not process_alive(child.pid, start)
    assert not process_alive(-1, None) and not process_alive("12", None)


def test_windows_lock_takes_the_first_byte_and_waits_its_turn(monkeypatch, tmp_path):
    calls = []
    busy = iter([True, False])  # the first try finds the lock held by another drive

    def locking(fd, mode, nbytes):
        calls.append((mode, nbytes))
        if mode == "LOCK" and next(busy):
            raise OSError(errno.EDEADLOCK, "Resource deadlock avoided")  # as msvcrt after its 10 tries

    monkeypatch.setitem(sys.modules, "msvcrt", SimpleNamespace(LK_LOCK="LOCK", LK_UNLCK="UNLOCK", locking=locking))
    monkeypatch.setattr(process_liveness, "WINDOWS", True)
    monkeypatch.setattr(process_liveness.time, "sleep", lambda s: None)
    with exclusive_lock(tmp_path / ".lock"):
        assert calls == [("LOCK", 1), ("LOCK", 1)]
    assert calls[-1] == ("UNLOCK", 1)


def test_windows_lock_gives_up_on_an_error_waiting_cannot_clear(monkeypatch, tmp_path):
    """Only EDEADLOCK means "still held" (the CRT's _locking after its 10 tries): EBADF or EINVAL were
    retried for ever; now they raise, and ServerLease.claim goes on unlocked."""
    calls = []

    def locking(fd, mode, nbytes):
        calls.append(mode)
        if len(calls) > 20:
            raise AssertionError("still retrying an error that cannot clear")
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setitem(sys.modules, "msvcrt", SimpleNamespace(LK_LOCK="LOCK", LK_UNLCK="UNLOCK", locking=locking))
    monkeypatch.setattr(process_liveness, "WINDOWS", True)
    monkeypatch.setattr(process_liveness.time, "sleep", lambda s: None)
    with pytest.raises(OSError, match="Invalid argument"):
        with exclusive_lock(tmp_path / ".lock"):
            pytest.fail("entered without the lock")
    assert calls == ["LOCK"]


def test_the_lock_keeps_a_second_holder_out_until_released(tmp_path):
    lock = tmp_path / ".lock"
    assert who_held_first(exclusive_lock(lock), lambda: exclusive_lock(lock), wait_s=0.2) == ["first", "second"]
