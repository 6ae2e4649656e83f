"""`RemoteRenderer`: the Renderer API over the render service (`python -m neural_render.serve`), one
stream of its batched Triton model per RemoteRenderer, over gRPC (tritonclient, the `serve` extra).

The wire (shared with neural_render.serve, which imports these names): a request holds the stream's
id, the labels, the flow when there is one and the cut flag; the answer holds the image, an error
text (empty when the frame was rendered: a bad frame must fail its own request, not the batch it was
in), the server's instance id (a new one per start: a changed id means the stream's history is gone
and the server started it with a cut), the seconds of the forward pass and the batch size it ran in.
"""

from __future__ import annotations

import time
import uuid

import numpy as np

from carla_bridge.core.frames import parse_size
from neural_render.runtime.common import HistorySwitch, check_frame_cut, check_inputs, frame_fields, log

MODEL_NAME = "neural_render"
# inputs
STREAM, LABELS, FLOW, CUT = "stream", "labels", "flow", "cut"
# outputs
IMAGE, ERROR, SERVER_ID, COMPUTE_S, BATCH_SIZE = "image", "error", "server_id", "compute_s", "batch_size"
DEFAULT_TIMEOUT_S = 60.0  # a first frame on a GPU server may include cuDNN's autotuning


def grpc_address(url: str) -> str:
    """host:port from 'grpc://host:port' or 'host:port'; a ValueError naming the URL otherwise."""
    address = url.removeprefix("grpc://")
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        raise ValueError(f"server URL {url!r}: expected grpc://HOST:PORT or HOST:PORT, the service's gRPC port "
                         "(python -m neural_render.serve --grpc-port, default 8001)")
    return address


class RemoteRenderer(HistorySwitch):
    """Renders through the service with exactly the Renderer's API: ``render(frame)``, ``reset()``,
    ``close()`` and a ``with`` block. ``stream`` names this camera on the server (default: a fresh
    random id); two RemoteRenderers must not share one. The frame is checked here as the Renderer checks
    it (same messages), so a bad frame never travels. ``last_timings`` holds perf_counter_ns spans:
    preprocess, inference (the round trip), and inside it remote.compute (the server's forward pass)
    and remote.wait (network and Triton's queue), laid end to end since only their lengths are known."""

    backend_name = "remote"
    model_name = "remote"  # the server's model; the client does not load it
    precision = "fp32"  # what the server was started with is its own flag; the client cannot see it
    compiled = False
    takes_weather = False  # the service refuses a weather model (neural_render.serve.__main__)

    def __init__(self, url: str, size: tuple[int, int] = (256, 128), stream: str | None = None,
                 num_classes: int = 29, timeout_s: float = DEFAULT_TIMEOUT_S):
        import tritonclient.grpc as grpcclient  # the optional `serve` extra: only a remote drive needs it

        self.url = url
        self.size = parse_size(size, "size")
        self.stream = stream or uuid.uuid4().hex
        self.num_classes = num_classes
        self.timeout_s = timeout_s
        self.device_name = f"server {url}"
        self._grpc = grpcclient
        self._client = grpcclient.InferenceServerClient(grpc_address(url))
        self._call(lambda: self._client.is_model_ready(MODEL_NAME, client_timeout=timeout_s))
        self._history_enabled = True
        self._has_history = False  # the first frame goes with a cut: the server may know this stream id
        self.server_id: str | None = None
        self.server_restarts = 0
        self.last_batch_size = 0
        self.frames_rendered = 0
        self.last_timings: dict[str, tuple[int, int]] = {}

    def reset(self) -> None:
        """Drop the history: the next frame goes with a cut."""
        self._open_client()
        self._has_history = False

    def close(self) -> None:
        """Close the connection (the server drops the stream once it is idle). Idempotent."""
        if self._client is not None:
            self._client.close()
        self._client = None

    def __enter__(self) -> RemoteRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_client(self):
        if self._client is None:
            raise RuntimeError(f"{self!r} is closed: build a new RemoteRenderer to render again")
        return self._client

    def render(self, frame) -> np.ndarray:
        client = self._open_client()
        start = time.perf_counter_ns()
        labels, flow, cut = frame_fields(frame)
        check_inputs(labels, flow, self.size, self.num_classes)
        cut = check_frame_cut(cut) or not (self._has_history and self._history_enabled)
        inputs = self._inputs(np.ascontiguousarray(labels), flow, cut)
        sent = time.perf_counter_ns()
        answer = self._call(lambda: client.infer(MODEL_NAME, inputs, client_timeout=self.timeout_s))
        done = time.perf_counter_ns()
        error = answer.as_numpy(ERROR)[0, 0].decode()
        if error:
            raise ValueError(error)
        self._note_server(answer.as_numpy(SERVER_ID)[0, 0].decode())
        compute_ns = min(int(float(answer.as_numpy(COMPUTE_S)[0, 0]) * 1e9), done - sent)
        self.last_batch_size = int(answer.as_numpy(BATCH_SIZE)[0, 0])
        self.last_timings = {"preprocess": (start, sent), "inference": (sent, done),
                             "remote.wait": (sent, done - compute_ns), "remote.compute": (done - compute_ns, done)}
        self._has_history = self._history_enabled
        self.frames_rendered += 1
        return answer.as_numpy(IMAGE)[0]

    def _call(self, request):
        """request() on the server; a ConnectionError naming the URL when it is down, not ready, or has
        not answered within timeout_s (a server killed mid-frame must not hang the drive)."""
        try:
            answer = request()
        except self._grpc.InferenceServerException as error:
            raise ConnectionError(f"render server {self.url} did not answer ({_first_line(error)}); start it with "
                                  "`python -m neural_render.serve`, or check the URL") from None
        if answer is False:  # is_model_ready: the server answers but has not loaded the model (yet)
            raise ConnectionError(f"render server {self.url} answers but its model '{MODEL_NAME}' is not ready; "
                                  "wait for the server's 'serving' line, or check the URL")
        return answer

    def _inputs(self, labels: np.ndarray, flow: np.ndarray | None, cut: bool) -> list:
        def tensor(name: str, array: np.ndarray, datatype: str):
            item = self._grpc.InferInput(name, list(array.shape), datatype)
            item.set_data_from_numpy(array)
            return item

        inputs = [tensor(STREAM, np.array([[self.stream.encode()]], dtype=object), "BYTES"),
                  tensor(LABELS, labels[None], "UINT8"), tensor(CUT, np.array([[cut]]), "BOOL")]
        if flow is not None:
            inputs.append(tensor(FLOW, np.ascontiguousarray(flow)[None], "FP32"))
        return inputs

    def _note_server(self, server_id: str) -> None:
        """A changed instance id: the server restarted and began this stream with a cut (it did not
        know the stream); say so once, as a Renderer's history loss would go unnoticed otherwise."""
        if self.server_id is not None and server_id != self.server_id:
            self.server_restarts += 1
            log.warning("render server %s restarted: stream %s started again with a cut", self.url, self.stream)
        self.server_id = server_id

    def __repr__(self) -> str:
        w, h = self.size
        return f"RemoteRenderer({w}x{h}, server={self.url}, stream={self.stream})"


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
