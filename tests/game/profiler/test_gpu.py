"""The profiler's CUDA path on a real GPU: CUDA events give device times, NVTX ranges do not fail.
Skipped without CUDA (CPU-only torch builds take the fallback path tested in test_cuda.py)."""

import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

from game.bench.workloads import synthetic_frame  # noqa: E402
from game.profiler.hooks import timed_render  # noqa: E402
from game.profiler.profiler import Profiler  # noqa: E402
from game.profiler.report import write_report  # noqa: E402
from neural_render.model import build_generator  # noqa: E402
from neural_render.runtime import Renderer  # noqa: E402

SIZE = (128, 64)


def test_cuda_events_measure_device_time(tmp_path):
    profiler = Profiler(warmup_frames=2, use_cuda=True, cuda_every=1)
    assert profiler._cuda is not None and profiler.cuda_device_name
    a = torch.randn(2048, 2048, device="cuda")
    for _ in range(8):
        profiler.begin_frame()
        with profiler.stage("inference"):
            b = a @ a  # asynchronous: the host span is the launch, the device span the kernel
        with profiler.stage("download"):
            value = float(b[0, 0])  # synchronizes
        with profiler.device_range("matmul_only"):
            a @ a
        profiler.end_frame()
    report = write_report(profiler, tmp_path, {"backend": "torch", "device": "cuda", "source": "gpu-test"})
    device = report["device_ms"]
    assert device["inference"]["count"] == 6 and device["inference"]["p50"] > 0.005
    assert device["matmul_only"]["count"] == 6 and "matmul_only" not in report["stages"]
    assert report["cuda_device"] == torch.cuda.get_device_name()
    assert value == value  # finite read-back happened
    assert (tmp_path / "trace.json").stat().st_size > 0


def test_renderer_on_cuda_is_profiled_with_device_time(tmp_path):
    renderer = Renderer(build_generator("tiny").eval(), backend="torch", device="cuda", size=SIZE)
    profiler = Profiler(warmup_frames=2, use_cuda=True)  # default: device time on every 4th frame
    for i in range(10):
        profiler.begin_frame()
        image = timed_render(profiler, renderer, synthetic_frame(i, SIZE))
        profiler.end_frame()
    assert image.shape == (SIZE[1], SIZE[0], 3)
    report = write_report(profiler, tmp_path, {"backend": "torch", "device": "cuda"})
    assert {"preprocess", "upload", "inference", "download", "render"} <= set(report["stages"])
    assert report["device_ms"]["render"]["count"] == 2  # frames 4 and 8 (0 is warm-up)
