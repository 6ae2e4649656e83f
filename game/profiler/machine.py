"""What the numbers were measured on: CPU model, cores, OS, Python and library versions, GPU, for the
profiler's report.json and comparison.json and the bench suite's JSON alike.

Versions come from package metadata (importlib.metadata), so describing the machine never imports
torch or onnxruntime; the GPU is described only when torch is already loaded (a CPU drive that never
needed CUDA does not initialise it for the report).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

_PACKAGES = ("torch", "numpy", "triton", "onnxruntime-gpu", "onnxruntime", "tensorrt", "tensorrt-rtx-cu13",
             "openvino", "pygame")


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "hostname": platform.node(),
        "versions": {},
    }
    for name in _PACKAGES:
        try:
            info["versions"][name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    info["torch"] = info["versions"].get("torch")
    info.update(cuda_available=False, gpu=None)
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            info.update(_gpu(torch))
        except Exception:  # a broken driver must not lose the figures it is written beside
            pass
    return info


def _gpu(torch: Any) -> dict[str, Any]:
    if not torch.cuda.is_available():
        return {}
    props = torch.cuda.get_device_properties(0)
    return {"cuda_available": True, "gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "driver": _driver()}


def _driver() -> str | None:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
