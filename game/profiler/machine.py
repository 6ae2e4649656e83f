"""What the numbers were measured on: CPU model, cores, OS, Python and library versions, GPU.

Versions come from package metadata (importlib.metadata), so describing the machine never imports
torch or onnxruntime; the GPU name is read only when torch is already loaded.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

_PACKAGES = ("torch", "numpy", "onnxruntime-gpu", "onnxruntime", "tensorrt", "pygame")


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
    torch = sys.modules.get("torch")
    gpu = None
    if torch is not None:
        try:
            if torch.cuda.is_available():
                gpu = torch.cuda.get_device_name()
        except Exception:  # a broken driver must not lose the report
            gpu = None
    info["gpu"] = gpu
    return info
