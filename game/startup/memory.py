"""A warning before a drive that will not fit in memory: at `--res 8192x4096` on the CPU the system's
out-of-memory killer ended the run (exit 137) with no word of why (QA pass, session 6).

The estimate is a measurement, not a model of every buffer: the peak resident memory of
`python launch.py --headless --frames 3 --res R` with the shipped cpu model on ONNX Runtime's CPU
provider (2-core box, session 6) was 0.51 GB at 256x128, 2.33 GB at 1024x512 and 7.46 GB at 2048x1024:
a straight line of about 3.3 kB per pixel above 0.6 GB. GPU runs keep their big tensors on the device
and are not estimated. It only warns: other presets and backends differ, and a user may know better.
"""

from __future__ import annotations

from pathlib import Path

CPU_BYTES_PER_PIXEL = 3300
CPU_BASE_BYTES = 0.6e9


def memory_warning(size: tuple[int, int], device: str) -> str | None:
    """One line when a CPU drive at ``size`` likely needs more memory than the machine has available."""
    available = available_bytes()
    if device != "cpu" or available is None:
        return None
    width, height = size
    need = CPU_BASE_BYTES + CPU_BYTES_PER_PIXEL * width * height
    if need <= available:
        return None
    return (f"warning: at {width}x{height} a drive on the CPU needs about {need / 2**30:.0f} GiB of memory "
            f"(measured: about {CPU_BYTES_PER_PIXEL / 1000:.1f} kB per pixel) and {available / 2**30:.1f} GiB is "
            f"available: the system will likely kill it; pick a smaller --res")


def available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (Linux), or None where there is none."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
