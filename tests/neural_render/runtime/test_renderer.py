"""neural_render.runtime.renderer: the Renderer over the torch and onnxruntime backends (CPU) as a library
user embeds it in their own simulator loop: output, history carry / reset / cut / switch, backend
agreement, timings, output ownership, threads, close, and a clear error for every bad constructor
argument and every kind of bad frame."""

import threading
import types

import numpy as np
import pytest
import torch

import neural_render.runtime.renderer as renderer_module
from neural_render.checkpoint import CheckpointError, save_generator
from neural_render.model import build_generator
from neural_render.runtime import Renderer
from support.runtime import HeldStep, random_frame, tiny_generator_with_flow

W, H = 64, 32
BACKENDS = ["torch", "onnxruntime"]


def frame(seed, cut=False, flow=True):
    return random_frame(seed, (W, H), cut=cut, flow=flow)


@pytest.fixture(scope="module")
def model():
    return tiny_generator_with_flow()


@pytest.fixture(scope="module", params=["torch", "onnxruntime"])
def renderer(request, model, tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("NEURAL_DRIVE_CACHE", str(tmp_path_factory.mktemp("cache")))
    return Renderer(model, backend=request.param, device="cpu", size=(W, H))


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.getbasetemp() / "library-qa-cache"
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(folder))
    return folder


def make(model, backend, **kw):
    return Renderer(model, backend=backend, device="cpu", size=(W, H), **kw)


# --- history ---------------------------------------------------------------------------------------


def test_output_and_attributes(renderer):
    img = renderer.render(frame(0, cut=True))
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    assert renderer.size == (W, H) and renderer.model_name == "tiny" and renderer.precision == "fp32"
    assert renderer.backend_name in ("torch", "onnxruntime") and renderer.device_name == "cpu"
    assert set(renderer.last_timings) == {"preprocess", "upload", "inference", "download"}
    for start, end in renderer.last_timings.values():
        assert 0 < start <= end


def test_history_carry_and_cut(renderer):
    renderer.reset()
    first = renderer.render(frame(1))
    second = renderer.render(frame(2))
    fresh = renderer.render(frame(2, cut=True))  # same labels, history dropped
    assert not np.array_equal(second, fresh)
    renderer.reset()
    np.testing.assert_array_equal(renderer.render(frame(1)), first)  # reset = brand new renderer


def test_history_disabled_is_frame_by_frame(renderer):
    renderer.reset()
    alone = renderer.render(frame(5))
    renderer.render(frame(6))
    renderer.history_enabled = False
    renderer.render(frame(7))
    np.testing.assert_array_equal(renderer.render(frame(5)), alone)
    renderer.history_enabled = True


def test_backends_agree(model, tmp_path, monkeypatch):
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    a = Renderer(model, backend="torch", device="cpu", size=(W, H))
    b = Renderer(model, backend="onnxruntime", device="cpu", size=(W, H))
    for i in range(4):
        f = frame(10 + i, cut=i == 0, flow=i != 2)
        diff = np.abs(a.render(f).astype(int) - b.render(f).astype(int)).max()
        assert diff <= 1, (i, diff)


@pytest.mark.parametrize("bad, match", [
    (dict(labels=np.zeros((H, W), np.int64)), "dtype"),
    (dict(labels=np.zeros((H, W, 1), np.uint8)), "shape"),
    (dict(labels=np.zeros((H, W + 8), np.uint8)), "size mismatch"),
    (dict(labels=np.full((H, W), 29, np.uint8)), "outside 0..28"),
    (dict(labels=[[0]]), "numpy array"),
    (dict(flow=np.full((H, W, 2), np.nan, np.float32)), "NaN"),
    (dict(flow=np.zeros((H, W, 2), np.float64)), "float32"),
    (dict(flow=np.zeros((2, H, W), np.float32)), "flow shape"),
])
def test_bad_input(renderer, bad, match):
    f = frame(0)
    for key, value in bad.items():
        setattr(f, key, value)
    with pytest.raises(ValueError, match=match):
        renderer.render(f)
    assert renderer.render(frame(0)).shape == (H, W, 3)  # still usable afterwards


def test_constructor_errors(model, tmp_path):
    with pytest.raises(ValueError, match="multiples"):
        Renderer(model, backend="torch", size=(60, 32))
    with pytest.raises(ValueError, match="backend"):
        Renderer(model, backend="vulkan", size=(W, H))
    with pytest.raises(ValueError, match="precision"):
        Renderer(model, backend="torch", precision="int8", size=(W, H))
    path = save_generator(model, tmp_path / "m.safetensors")
    r = Renderer(str(path), backend="torch", device="cpu", size=(W, H))
    assert r.render(frame(0)).shape == (H, W, 3)
    with pytest.raises(CheckpointError):
        Renderer(str(path), backend="torch", size=(W, H), preset="cpu")
    (tmp_path / "trunc.safetensors").write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError):
        Renderer(tmp_path / "trunc.safetensors", backend="torch", size=(W, H))


def test_model_not_modified_by_backend(model):
    Renderer(model, backend="torch", device="cpu", precision="bf16", size=(W, H))
    assert next(model.parameters()).dtype == torch.float32


@pytest.mark.parametrize("backend", BACKENDS)
def test_setting_history_enabled_to_its_own_value_keeps_the_history(model, backend):
    """A loop that writes `renderer.history_enabled = settings.recurrent` every tick must still get a
    recurrent render: only a change of the switch may drop the history."""
    looped, plain = make(model, backend), make(model, backend)
    for i in range(4):
        looped.history_enabled = True
        a, b = looped.render(frame(i, cut=i == 0)), plain.render(frame(i, cut=i == 0))
        np.testing.assert_array_equal(a, b, err_msg=f"frame {i}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_reset_cut_and_switch_give_a_fresh_renderers_first_frame(model, backend):
    r = make(model, backend)
    first = make(model, backend).render(frame(9))
    for how in ("reset", "cut", "switch"):
        for i in range(3):
            r.render(frame(i))
        if how == "reset":
            r.reset()
            out = r.render(frame(9))
        elif how == "cut":
            out = r.render(frame(9, cut=True))
        else:
            r.history_enabled = False
            r.history_enabled = True
            out = r.render(frame(9))
        np.testing.assert_array_equal(out, first, err_msg=how)


# --- outputs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_result_is_the_callers_own_array(model, backend):
    r = make(model, backend)
    a = r.render(frame(0, cut=True))
    kept = a.copy()
    assert a.flags.c_contiguous and a.flags.writeable and a.shape == (H, W, 3) and a.dtype == np.uint8
    a[...] = 7  # scribbling on a result must not touch the renderer's history
    b = r.render(frame(1))
    np.testing.assert_array_equal(make(model, backend).render(frame(0)), kept)
    ref = make(model, backend)
    ref.render(frame(0))
    np.testing.assert_array_equal(b, ref.render(frame(1)))
    assert not np.shares_memory(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_renderer_used_from_another_thread(model, backend):
    r, ref = make(model, backend), make(model, backend)
    got, errors = [], []

    def run():
        try:
            got.extend(r.render(frame(i, cut=i == 0)) for i in range(3))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert not errors
    for i, out in enumerate(got):
        np.testing.assert_array_equal(out, ref.render(frame(i, cut=i == 0)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("second_call", ["render", "reset"])
def test_a_renderer_in_use_by_another_thread_refuses_at_once(model, backend, second_call):
    """One Renderer holds one drive's history (and on ONNX Runtime one set of I/O buffers): a second
    thread's call while a render runs is refused with what to do, and the first frame is unharmed."""
    r, ref = make(model, backend), make(model, backend)
    held = r._backend = HeldStep(r._backend)
    got = []
    first = threading.Thread(target=lambda: got.append(r.render(frame(0))))
    first.start()
    assert held.inside.wait(10)
    try:
        with pytest.raises(RuntimeError, match="in use by another thread: use one Renderer per thread"):
            getattr(r, second_call)(*([frame(1)] if second_call == "render" else []))
    finally:
        held.release.set()
        first.join(10)
    np.testing.assert_array_equal(got[0], ref.render(frame(0)))
    np.testing.assert_array_equal(r.render(frame(1)), ref.render(frame(1)))  # free again once it returned


# --- constructor arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [123, None, {"weights": 1}, torch.nn.Linear(2, 2)])
def test_a_model_of_the_wrong_type_is_one_clear_error(bad):
    with pytest.raises(ValueError, match="model"):
        Renderer(bad, backend="torch", device="cpu", size=(W, H))


def test_preset_is_checked_for_a_model_object_too(model):
    with pytest.raises(ValueError, match="preset 'cpu'.*'tiny'"):
        Renderer(model, backend="torch", device="cpu", size=(W, H), preset="cpu")
    assert make(model, "torch", preset="tiny").model_name == "tiny"


def test_the_callers_model_keeps_its_mode():
    training = build_generator("tiny")  # e.g. a preview renderer built while training
    assert training.training
    Renderer(training, backend="torch", device="cpu", size=(W, H))
    assert training.training


@pytest.mark.parametrize("size, needle", [
    ((64.5, 32), "whole"), (("a", "b"), "size"), ((True, 32), "whole"), ((64, None), "size")])
def test_size_must_be_two_whole_numbers(model, size, needle):
    with pytest.raises(ValueError, match=needle):
        Renderer(model, backend="torch", device="cpu", size=size)


def test_integral_sizes_of_other_types_are_taken(model):
    assert Renderer(model, backend="torch", device="cpu", size=(np.int64(W), 32.0)).size == (W, H)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_size_too_small_for_the_network_is_refused_up_front(backend):
    """The cpu preset's SPADE bottleneck is 1/8: at 8x8 it holds one pixel and instance norm fails
    inside the backend ('Expected more than 1 spatial element when training')."""
    with pytest.raises(ValueError, match="too small"):
        Renderer(build_generator("cpu"), backend=backend, device="cpu", size=(8, 8))


@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
@pytest.mark.parametrize("device", ["tpu", "gpu", "CPU", "cuda:x", "meta", 0, "mps"])
def test_an_unknown_device_is_a_valueerror_naming_it(model, backend, device):
    with pytest.raises(ValueError, match="device"):
        Renderer(model, backend=backend, device=device, size=(W, H))


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
@pytest.mark.parametrize("device", ["cuda", "cuda:7"])
def test_cuda_asked_for_without_a_gpu_is_an_error_not_a_silent_cpu_run(model, backend, device):
    with pytest.raises(ValueError, match="(?i)cuda"):
        Renderer(model, backend=backend, device=device, size=(W, H))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_torch_device_object_is_taken(model, backend):
    r = Renderer(model, backend=backend, device=torch.device("cpu"), size=(W, H))
    assert r.device_name == "cpu" and r.render(frame(0)).shape == (H, W, 3)


# --- frames ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", ["no", np.array([True, False]), 2.5])
def test_cut_must_be_a_bool(model, cut):
    r = make(model, "torch")
    with pytest.raises(ValueError, match="cut"):
        r.render(types.SimpleNamespace(labels=frame(0).labels, flow=None, cut=cut))


@pytest.mark.parametrize("cut", [np.bool_(True), 1, None])
def test_bool_like_cuts_are_taken(model, cut):
    make(model, "torch").render(types.SimpleNamespace(labels=frame(0).labels, flow=None, cut=cut))


@pytest.mark.parametrize("bad", [{"labels": np.zeros((H, W), np.uint8), "flow": None, "cut": False}, None,
                                 np.zeros((H, W), np.uint8)])
def test_a_frame_without_labels_says_what_a_frame_is(model, bad):
    with pytest.raises(ValueError, match="SceneFrame"):
        make(model, "torch").render(bad)


# --- the ONNX cache ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_close_releases_the_backend_and_a_closed_renderer_says_so(model, backend):
    with make(model, backend) as renderer:
        first = renderer.render(frame(0))
    assert first.shape == (H, W, 3)
    with pytest.raises(RuntimeError, match="closed: build a new Renderer"):
        renderer.render(frame(1))
    renderer.close()  # idempotent


def test_an_unknown_preset_is_named_as_such_not_as_a_mismatch(tmp_path):
    path = save_generator(build_generator("tiny"), tmp_path / "tiny.safetensors")
    with pytest.raises(ValueError, match="preset 'bogus': choose one of tiny, cpu, gpu"):
        Renderer(path, backend="torch", device="cpu", size=(W, H), preset="bogus")  # read "trained for 'bogus'"


def test_a_size_memory_cannot_hold_is_named(model, monkeypatch):
    """torch's own message gave a byte count ("DefaultCPUAllocator: can't allocate memory: you tried to
    allocate 6442450944 bytes"), not the size to change."""
    def no_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 6442450944 bytes")

    monkeypatch.setattr(renderer_module, "create_backend", no_memory)
    with pytest.raises(MemoryError, match="size 64x32: not enough memory.*use a smaller size"):
        make(model, "torch")

    def broken(*args, **kwargs):
        raise RuntimeError("some other failure")

    monkeypatch.setattr(renderer_module, "create_backend", broken)
    with pytest.raises(RuntimeError, match="some other failure"):  # other errors pass unchanged
        make(model, "torch")
