"""Which backends can run here, and `auto`: on an RTX card (RTX_CAPABILITIES) tensorrt-rtx, else
tensorrt; then torch on CUDA; on the CPU openvino when installed (faster than ONNX Runtime there: see
the README's CPU table), else onnxruntime."""

from __future__ import annotations

import importlib.util
import re

import torch

from neural_render.model import Vid2VidGenerator
from neural_render.runtime.common import BACKENDS, RTX_CAPABILITIES, log
from neural_render.runtime.torch_backend import TorchBackend


def _cuda() -> bool:
    return torch.cuda.is_available()


def cuda_device_problem(device: str | None, fix: str = "use --device cpu") -> str | None:
    """Why torch cannot use ``device`` ('cuda', 'cuda:N') on this machine, or None (also for the CPU).
    One check for every command line: asking for a GPU that is not there must be an error naming the
    flag, not a traceback (train) or a silent CPU run (bench, launch.py)."""
    if not device or not str(device).startswith("cuda"):
        return None
    if not re.fullmatch(r"cuda(:\d+)?", str(device)):  # 'cuda:x' would end in int()'s own error
        return f"'{device}' is not a CUDA device: expected cuda or cuda:N (N = 0, 1, ...)"
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return f"torch sees no CUDA GPU on this machine; {fix}"
    index = int(str(device).partition(":")[2] or 0)
    if index >= count:
        return f"torch sees {count} CUDA GPU(s): cuda:0 to cuda:{count - 1}"
    return None


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


MODULES = {"tensorrt-rtx": "tensorrt_rtx"}  # the backends whose package is not named like them
GPU_ONLY = ("tensorrt", "tensorrt-rtx")


def _rtx_card(device: str) -> bool:
    """Whether ``device`` ('cuda' meaning cuda:0, as in torch, or 'cuda:N') is a GPU TensorRT-RTX builds
    for, decided by compute capability: a machine may hold an RTX card beside a datacenter one."""
    return _cuda() and torch.cuda.get_device_capability(torch.device(device).index or 0) in RTX_CAPABILITIES


def unavailable_reason(backend: str, device: str | None) -> str:
    """Why ``backend`` is not in available_backends(device), in a few words."""
    if not _has(MODULES.get(backend, backend)):
        return "not installed"
    if backend == "tensorrt-rtx" and _cuda():
        return "needs an RTX GPU (compute capability 7.5-12.0)"
    if backend == "openvino":
        return "runs on the CPU only"
    return "needs a CUDA GPU" if backend in GPU_ONLY or str(device).startswith("cuda") else "unavailable"


def available_backends(device: str | None = None) -> list[str]:
    """Backends that can run on `device` ("cpu", "cuda" or None = any) on this machine."""
    if device not in (None, "cpu") and not str(device).startswith("cuda"):
        raise ValueError(f"device '{device}': expected 'cpu', 'cuda' or 'cuda:N'")
    cuda = _cuda()
    want_cuda = device is not None and str(device).startswith("cuda")
    out = []
    if not want_cuda or cuda:
        out.append("torch")
    if _has("onnxruntime"):
        if not want_cuda:
            out.append("onnxruntime")
        else:
            import onnxruntime as ort  # optional and heavy: only to ask for its CUDA provider
            if cuda and "CUDAExecutionProvider" in ort.get_available_providers():
                out.append("onnxruntime")
    if device != "cpu" and cuda and _has("tensorrt"):
        out.append("tensorrt")
    if device != "cpu" and _rtx_card(device if want_cuda else "cuda") and _has("tensorrt_rtx"):
        out.append("tensorrt-rtx")
    if not want_cuda and _has("openvino"):
        out.append("openvino")
    return out


def resolve_backend(backend: str = "auto", device: str | None = None) -> tuple[str, str]:
    """(backend, device) for a request; `auto` as the module docstring says."""
    if backend not in ("auto", *BACKENDS):
        raise ValueError(f"backend '{backend}': choose auto, {', '.join(BACKENDS)}")
    if backend == "auto":
        gpu = device or "cuda"
        on_gpu = available_backends(gpu) if gpu != "cpu" else []
        for fastest in ("tensorrt-rtx", "tensorrt"):  # RTX only lists itself on an RTX card
            if fastest in on_gpu:
                return fastest, gpu
        if gpu != "cpu" and _cuda():
            return "torch", gpu
        return ("openvino" if _has("openvino") else "onnxruntime"), "cpu"
    if backend in GPU_ONLY:
        return backend, device or "cuda"
    if backend == "openvino":
        return backend, "cpu"
    if device is None:
        device = "cuda" if _cuda() else "cpu"
    return backend, device


def library_device(device: object) -> str | None:
    """The Renderer's ``device`` argument as None, 'cpu', 'cuda' or 'cuda:N' (a torch.device is taken),
    or a ValueError naming it, checked here once for every backend: 'tpu' or 'cuda:x' would end in
    torch's own error, 'meta', 'gpu' or 0 in a silent CPU run, and 'cuda' without a GPU in a silent CPU
    run on every backend but torch."""
    if device is None:
        return None
    text = str(device) if isinstance(device, torch.device) else device
    if isinstance(text, str) and re.fullmatch(r"cpu(:0)?", text):
        return "cpu"
    if not isinstance(text, str) or not re.fullmatch(r"cuda(:\d+)?", text):
        raise ValueError(f"device {device!r}: expected None (pick for me), 'cpu', 'cuda' or 'cuda:N'")
    problem = cuda_device_problem(text, fix="use device='cpu', or None to pick what is there")
    if problem:
        raise ValueError(f"device '{text}': {problem}")
    return text


def create_backend(backend: str, model: Vid2VidGenerator, size: tuple[int, int], device: str | None,
                   precision: str, compile: bool | str = False):
    device = library_device(device)
    if backend in GPU_ONLY and device == "cpu":
        raise ValueError(f"backend '{backend}' runs on a CUDA GPU only: use device='cuda', or backend "
                         "'openvino' / 'onnxruntime' / 'torch' on the CPU")
    if backend == "openvino" and device not in (None, "cpu"):
        raise ValueError(f"backend 'openvino' runs on the CPU here: use device='cpu' (or None), or backend "
                         f"'tensorrt-rtx' / 'torch' on '{device}'")
    name, device = resolve_backend(backend, device)
    log.info("runtime: backend %s on %s (%s)", name, device, precision)
    if name == "torch":
        return TorchBackend(model, size, device, precision, compile=compile)
    # Imported when chosen: these load onnx (1.6 s measured on the 2-core box) and onnxruntime, openvino
    # or tensorrt, optional packages a torch run never needs.
    if name == "onnxruntime":
        from neural_render.runtime.ort_backend import OrtBackend
        return OrtBackend(model, size, device, precision)
    if name == "openvino":
        from neural_render.runtime.openvino_backend import OpenVINOBackend
        return OpenVINOBackend(model, size, device, precision)
    # The TensorRT exports have no bf16 path: any reduced precision means fp16.
    reduced = "fp32" if precision == "fp32" else "fp16"
    if name == "tensorrt-rtx":
        from neural_render.runtime.trt_rtx_backend import TensorRTRTXBackend
        return TensorRTRTXBackend(model, size, device, reduced, cuda_graph=bool(compile))
    from neural_render.runtime.trt_backend import TensorRTBackend

    return TensorRTBackend(model, size, device, reduced, cuda_graph=bool(compile))
