"""OpenVINO backend for CPUs (`pip install -e .[openvino]`): the exported fp32 ONNX graph compiled by
OpenVINO's CPU plugin, history carried in host memory like ONNX Runtime's CPU path (HostHistory).

Precision is set explicitly, never left to the plugin: on a CPU with bf16 units OpenVINO's default
inference precision is bf16, which on a probe net moved outputs by up to 0.70 (of a [-1, 1] image)
against 8.8e-5 in f32. So fp32 forces INFERENCE_PRECISION_HINT f32, and bf16 (or fp16) is honoured only
where the CPU lists it among its OPTIMIZATION_CAPABILITIES, otherwise a ValueError says what to pass.
"""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.properties as props
import openvino.properties.hint as hints

from neural_render.model import Vid2VidGenerator
from neural_render.runtime.buffers import HostHistory
from neural_render.runtime.common import Stage, log
from neural_render.runtime.onnx import cached_onnx

OV_PRECISIONS = {"fp32": ("FP32", ov.Type.f32), "bf16": ("BF16", ov.Type.bf16), "fp16": ("FP16", ov.Type.f16)}


def cpu_precisions(core: ov.Core) -> list[str]:
    """Our precision names the CPU plugin can run here."""
    listed = set(core.get_property("CPU", props.device.capabilities))
    return [ours for ours, (theirs, _) in OV_PRECISIONS.items() if theirs in listed]


class OpenVINOBackend:
    name = "openvino"
    compiled = False  # --compile has nothing to act on: OpenVINO always compiles the graph for the CPU

    def __init__(self, model: Vid2VidGenerator, size: tuple[int, int], device: str | None = None,
                 precision: str = "fp32", threads: int | None = None):
        # The device was checked where it entered (create_backend: CPU only); precision is one of PRECISIONS.
        core = ov.Core()
        runnable = cpu_precisions(core)
        if precision not in runnable:
            raise ValueError(f"precision '{precision}': this CPU's OpenVINO plugin runs {', '.join(runnable)} "
                             f"(its capabilities: {', '.join(core.get_property('CPU', props.device.capabilities))}); "
                             "pass --precision fp32")
        width, height = size
        config = {hints.inference_precision: OV_PRECISIONS[precision][1],
                  hints.performance_mode: hints.PerformanceMode.LATENCY}
        if threads:
            config[props.inference_num_threads] = threads
        path = cached_onnx(model, width, height, "fp32")
        self.compiled_model = core.compile_model(core.read_model(str(path)), "CPU", config)
        self.request = self.compiled_model.create_infer_request()
        self.precision = precision
        self.device_name = "cpu"
        self.onnx_path = path
        self.host = HostHistory(model.config.k, width, height, model.config.weather_dim)
        log.info("openvino: %s at %s on %s", path.name, precision, core.get_property("CPU", props.device.full_name))

    def reset(self) -> None:
        self.host.reset()

    def step(self, labels: np.ndarray, flow: np.ndarray | None, has_history: bool,
             timings: dict[str, tuple[int, int]], weather: np.ndarray | None = None) -> np.ndarray:
        with Stage(timings, "upload"):  # host memory is the device here: just lay the inputs out
            feeds = self.host.feeds(labels, flow, has_history, weather)
        with Stage(timings, "inference"):
            out = self.request.infer(feeds)  # copies of the outputs: the request reuses its own buffers
            _, image_u8, next_frames, next_labels = (out[o] for o in self.compiled_model.outputs)
            self.host.keep(next_frames, next_labels)
        with Stage(timings, "download"):
            return image_u8[0]
