"""Is another drive's process still running, and a lock file shared between drives, on Linux, macOS and
Windows (carla_bridge.client.lease uses both).

Each platform needs its own way, for reasons that are easy to get wrong:
- Linux: /proc/<pid>/stat gives the state (a killed process nobody reaped yet is a zombie, "Z", and
  counts as gone) and the start time, so a pid the system has since given to another process is not
  taken for the drive.
- Windows: ``os.kill(pid, 0)`` is not a probe there. Signal 0 is ``CTRL_C_EVENT``, and os.kill sends it
  to the console process group ``pid`` (GenerateConsoleCtrlEvent): it would interrupt a running drive
  instead of asking about it. The process is opened for query instead (OpenProcess) and its exit code
  read (GetExitCodeProcess answers STILL_ACTIVE while it runs); its creation time (GetProcessTimes)
  plays the part of the start time. Locks: msvcrt.locking, as there is no flock.
- Elsewhere (macOS, BSD): ``os.kill(pid, 0)`` probes without signalling; no start time, so a reused pid
  reads as alive (the cautious side: a live drive is never taken for dead).
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

WINDOWS = os.name == "nt"
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
STILL_ACTIVE = 259
ERROR_ACCESS_DENIED = 5


def process_start(pid: int) -> int | None:
    """The process's start time (Linux: clock ticks since boot; Windows: creation time as a FILETIME),
    or None where the platform gives none or the process is gone."""
    if WINDOWS:
        return _windows_query(pid, _kernel32())[1]
    stat = proc_stat(pid)
    return None if stat is None else int(stat[19])


def process_alive(pid: Any, start: Any) -> bool:
    """Whether ``pid`` is a running process, and the same one that had start time ``start`` (None: any)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if WINDOWS:
        alive, started = _windows_query(pid, _kernel32())
        return alive and (start is None or started is None or started == start)
    if Path("/proc/self/stat").exists():
        stat = proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):  # gone, or killed and not yet reaped (a zombie)
            return False
        return start is None or int(stat[19]) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def proc_stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on; None without /proc or without that process."""
    try:
        text = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    return text.rsplit(")", 1)[1].split()  # the name (field 2) may hold spaces and parentheses


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing) for the ``with`` block: flock on
    Unix, msvcrt.locking of its first byte on Windows. Raises OSError when the file cannot be opened or
    locked (a lock another drive holds is waited for, not an error)."""
    with open(path, "a+b") as lock:
        if WINDOWS:
            import msvcrt

            lock.seek(0)
            while True:
                try:
                    msvcrt.locking(lock.fileno(), msvcrt.LK_LOCK, 1)  # itself retries for about 10 s
                    break
                except OSError as error:
                    # LK_LOCK gives up with EDEADLOCK after its 10 tries (the CRT's _locking: the lock is
                    # still held, or LockFile keeps failing): wait on. EBADF or EINVAL cannot clear by
                    # waiting, and retrying them looped for ever; claim() goes on unlocked on OSError.
                    if error.errno != errno.EDEADLOCK:
                        raise
                    time.sleep(0.1)
            try:
                yield
            finally:
                lock.seek(0)
                msvcrt.locking(lock.fileno(), msvcrt.LK_UNLCK, 1)
            return
        import fcntl

        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _kernel32() -> Any:
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    kernel32.GetExitCodeProcess.argtypes = (wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD))
    kernel32.GetProcessTimes.argtypes = (wintypes.HANDLE,) + (ctypes.POINTER(wintypes.FILETIME),) * 4
    kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
    return kernel32


def _windows_query(pid: int, kernel32: Any, last_error: Callable[[], int] | None = None) -> tuple[bool, int | None]:
    """(running, creation time) of ``pid`` through the Win32 API ``kernel32`` and its error code
    ``last_error`` (ctypes.get_last_error; both given by tests, which fake them)."""
    import ctypes
    from ctypes import wintypes

    handle = kernel32.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        # Access denied: it exists, run by another user (it may still be a drive). Otherwise it is gone.
        return (last_error or ctypes.get_last_error)() == ERROR_ACCESS_DENIED, None
    try:
        code = wintypes.DWORD()
        running = not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) or code.value == STILL_ACTIVE
        times = [wintypes.FILETIME() for _ in range(4)]
        if not kernel32.GetProcessTimes(handle, *(ctypes.byref(t) for t in times)):
            return running, None
        created = times[0]
        return running, (created.dwHighDateTime << 32) | created.dwLowDateTime
    finally:
        kernel32.CloseHandle(handle)
