"""The Triton model `neural_render` on PyTriton: its tensors, its dynamic batcher, and the function
Triton calls with each batch of requests.

PyTriton rather than a model repository with the Python backend: the model, its device and the
streams' history live in this process (the Python backend would load them in a stub process of its
own, configured through files), and the bound function is plain Python that the tests can drive.

The function is bound without PyTriton's @batch, which would stack the requests into one array: it
gets the list of requests that Triton's dynamic batcher gathered (requests of one shape; streams of
another size wait for their own batch), checks each where it enters, and answers each request on its
own, so that one bad frame fails its own request and not the streams batched with it.
"""

from __future__ import annotations

import os
import sysconfig
import uuid

import numpy as np

from neural_render.model import Vid2VidGenerator
from neural_render.runtime.common import check_inputs, log
from neural_render.runtime.remote import (BATCH_SIZE, COMPUTE_S, CUT, ERROR, FLOW, IMAGE, LABELS, MODEL_NAME,
                                          SERVER_ID, STREAM)
from neural_render.serve.streams import BatchedStreams, StreamFrame


class RenderFunction:
    """Triton's infer function: a list of requests (dicts of arrays with a batch dimension of 1) to a
    list of answers, one forward pass over the streams of the batch (BatchedStreams)."""

    def __init__(self, model: Vid2VidGenerator, device: str, precision: str, idle_timeout_s: float):
        self.config = model.config
        self.streams = BatchedStreams(model, device, precision, idle_timeout_s)
        self.server_id = uuid.uuid4().hex  # a restart gets a new id: clients notice it (remote.py)

    def __call__(self, requests: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        frames, problems = [], []
        for request in requests:
            frame, problem = self._frame(request)
            frames.append(frame)
            problems.append(problem)
        good = [frame for frame in frames if frame is not None]
        images, compute_s = self.streams.render(good) if good else ([], 0.0)
        rendered = iter(images)
        return [self._answer(next(rendered) if problem is None else None, problem, compute_s, len(good))
                for problem in problems]

    def _frame(self, request: dict[str, np.ndarray]) -> tuple[StreamFrame | None, str | None]:
        """A request as a StreamFrame, checked here (the wire is where it enters), or its problem in the
        words the Renderer uses for the same frame."""
        try:
            labels = request[LABELS][0]
            flow = request[FLOW][0] if FLOW in request else None
            height, width = labels.shape
            self.config.check_size(width, height)
            check_inputs(labels, flow, (width, height), self.config.num_classes)
            stream = request[STREAM][0].decode() if isinstance(request[STREAM][0], bytes) else str(request[STREAM][0])
            return StreamFrame(stream, labels, flow, bool(request[CUT][0])), None
        except (ValueError, KeyError, IndexError, UnicodeDecodeError) as error:
            return None, str(error)

    def _answer(self, image: np.ndarray | None, problem: str | None, compute_s: float, batch: int) -> dict:
        return {IMAGE: (np.zeros((1, 1, 1, 3), np.uint8) if image is None else image[None]),
                ERROR: np.array([[(problem or "").encode()]], dtype=object),
                SERVER_ID: np.array([[self.server_id.encode()]], dtype=object),
                COMPUTE_S: np.array([[compute_s]], np.float32),
                BATCH_SIZE: np.array([[batch]], np.int32)}


def tensors():
    """(inputs, outputs) of the model, per request without the batch dimension."""
    from pytriton.model_config import Tensor  # the optional `serve` extra

    inputs = [Tensor(name=STREAM, dtype=bytes, shape=(1,)), Tensor(name=LABELS, dtype=np.uint8, shape=(-1, -1)),
              Tensor(name=FLOW, dtype=np.float32, shape=(-1, -1, 2), optional=True),
              Tensor(name=CUT, dtype=np.bool_, shape=(1,))]
    outputs = [Tensor(name=IMAGE, dtype=np.uint8, shape=(-1, -1, 3)), Tensor(name=ERROR, dtype=bytes, shape=(1,)),
               Tensor(name=SERVER_ID, dtype=bytes, shape=(1,)), Tensor(name=COMPUTE_S, dtype=np.float32, shape=(1,)),
               Tensor(name=BATCH_SIZE, dtype=np.int32, shape=(1,))]
    return inputs, outputs


SERVE_VENV = ("python3 -m venv serve-venv && serve-venv/bin/pip install torch==2.13.0 -e '.[serve]' "
              "(README, Serve many simulators)")


def pytriton_problem() -> str | None:
    """Why PyTriton cannot serve in this environment, or None. Under numpy 2 it starts and answers, but
    every answer is empty: its Python-backend stub (triton_python_backend_stub, Triton 2.51) is built
    with a pybind11 older than 2.12, which reads numpy 1's array layout, so each output the stub copies
    from numpy holds 0 bytes and a BYTES input kills the stub (measured under numpy 2.4.6). PyTriton 0.7,
    the last release, pins numpy < 2 for this; checked here so that a --no-deps install fails at start."""
    try:
        import pytriton  # noqa: F401  (the optional `serve` extra)
    except ImportError:
        return f"the render service needs PyTriton, the `serve` extra: {SERVE_VENV}"
    if int(np.__version__.split(".")[0]) >= 2:
        return (f"PyTriton 0.7 needs numpy < 2 (numpy {np.__version__} here: its Triton stub answers with empty "
                f"tensors): run the service in a venv of its own, {SERVE_VENV}")
    return None


def python_library_path() -> None:
    """Put this Python's library folder on LD_LIBRARY_PATH before Triton starts. Triton's Python-backend
    stub, which runs PyTriton's side of the model, is a separate executable linked against
    libpython3.11.so; a pyenv (or any non-system) Python keeps that library in its own LIBDIR, where the
    loader does not look, and the model then fails to load. PyTriton copies os.environ into the server's
    environment when it starts it (pytriton/server/triton_server.py, _get_env), so setting it here,
    in-process, reaches the stub without re-executing this process."""
    libdir = sysconfig.get_config_var("LIBDIR")
    paths = [path for path in os.environ.get("LD_LIBRARY_PATH", "").split(":") if path]
    if libdir and libdir not in paths:
        os.environ["LD_LIBRARY_PATH"] = ":".join([libdir, *paths])


def serve(function: RenderFunction, host: str, http_port: int, grpc_port: int, metrics_port: int, max_batch: int,
          max_queue_delay_us: int) -> None:
    """Start Triton with the model bound and block until SIGINT / SIGTERM; PyTriton stops the server."""
    from pytriton.model_config import DynamicBatcher, ModelConfig  # the optional `serve` extra
    from pytriton.triton import Triton, TritonConfig

    python_library_path()
    config = TritonConfig(http_address=host, http_port=http_port, grpc_address=host, grpc_port=grpc_port,
                          metrics_address=host, metrics_port=metrics_port)
    inputs, outputs = tensors()
    with Triton(config=config) as triton:
        triton.bind(model_name=MODEL_NAME, infer_func=function, inputs=inputs, outputs=outputs,
                    config=ModelConfig(max_batch_size=max_batch,
                                       batcher=DynamicBatcher(max_queue_delay_microseconds=max_queue_delay_us)),
                    strict=False)
        log.info("serve: model %s on grpc://%s:%d, http://%s:%d, metrics http://%s:%d/metrics (server id %s)",
                 MODEL_NAME, host, grpc_port, host, http_port, host, metrics_port, function.server_id)
        print(f"serving {MODEL_NAME}: grpc://{host}:{grpc_port}  http://{host}:{http_port}  "
              f"metrics http://{host}:{metrics_port}/metrics", flush=True)
        triton.serve()
