"""The Renderer as a library user embeds it in their own simulator loop: every constructor argument's
bad values, odd frames, history semantics, output ownership, threads, and the ONNX cache. Each test
here failed before its fix (a QA pass of the library API)."""

import threading
import types

import numpy as np
import pytest
import torch

from support.runtime import tiny_generator_with_flow

from neural_render.model import build_generator
from neural_render.runtime import Renderer

W, H = 64, 32
BACKENDS = ["torch", "onnxruntime"]


def frame(seed, cut=False, flow=True):
    rng = np.random.default_rng(seed)
    return types.SimpleNamespace(labels=rng.integers(0, 29, (H, W), dtype=np.uint8),
                                 flow=(rng.standard_normal((H, W, 2)) * 2).astype(np.float32) if flow else None,
                                 cut=cut)


@pytest.fixture(scope="module")
def model():
    return tiny_generator_with_flow()


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.getbasetemp() / "library-qa-cache"
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(folder))
    return folder


def make(model, backend, **kw):
    return Renderer(model, backend=backend, device="cpu", size=(W, H), **kw)


# --- history ---------------------------------------------------------------------------------------

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

def test_a_cached_onnx_with_altered_weights_is_exported_again(model, tmp_path, monkeypatch):
    """A cache file that still parses and has the right nodes but whose weights were changed (disk
    corruption, a foreign file under our name) rendered wrong images without a word."""
    import onnx
    from onnx import numpy_helper

    from neural_render.export import cached_onnx

    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    want = make(model, "onnxruntime").render(frame(3, cut=True))
    path = cached_onnx(model, W, H)
    graph = onnx.load(str(path))
    for init in graph.graph.initializer:
        values = numpy_helper.to_array(init)
        if values.dtype.kind == "f":
            init.CopyFrom(numpy_helper.from_array((values * -3).astype(values.dtype), init.name))
    onnx.save(graph, str(path))
    np.testing.assert_array_equal(make(model, "onnxruntime").render(frame(3, cut=True)), want)


def test_a_cached_onnx_of_another_size_is_exported_again(model, tmp_path, monkeypatch):
    """Another size's graph under our name crashed inside ONNX Runtime at the first render."""
    from neural_render.export import cached_onnx

    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    want = make(model, "onnxruntime").render(frame(4, cut=True))
    path = cached_onnx(model, W, H)
    path.write_bytes(cached_onnx(model, 2 * W, 2 * H).read_bytes())
    np.testing.assert_array_equal(make(model, "onnxruntime").render(frame(4, cut=True)), want)


def test_a_failed_export_leaves_no_temporary_file(model, tmp_path, monkeypatch):
    import neural_render.export as export

    def broken(path):
        raise RuntimeError("simulated bad graph")

    monkeypatch.setattr(export, "check_graph", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        export.export_onnx(model, tmp_path / "m.onnx", W, H)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_close_releases_the_backend_and_a_closed_renderer_says_so(model, backend):
    with make(model, backend) as renderer:
        first = renderer.render(frame(0))
    assert first.shape == (H, W, 3)
    with pytest.raises(RuntimeError, match="closed: build a new Renderer"):
        renderer.render(frame(1))
    renderer.close()  # idempotent


def test_the_size_rule_holds_for_training_and_tools_too():
    """The bottleneck check lives in GeneratorConfig.check_size, which train and bench call directly."""
    with pytest.raises(ValueError, match="too small for preset 'cpu'.*at least 16x8"):
        build_generator("cpu").config.check_size(8, 8)
    build_generator("tiny").config.check_size(8, 8)  # its bottleneck is 1/4: 2x2 pixels run fine


def test_a_malformed_cuda_device_is_named_not_an_int_error():
    from neural_render.runtime.select import cuda_device_problem

    assert "expected cuda or cuda:N" in cuda_device_problem("cuda:x")


def test_an_older_versions_export_in_a_read_only_cache_still_serves(model, tmp_path, monkeypatch):
    """Caches baked into an image before the stamp existed must not fail once they are read-only."""
    import onnx

    import neural_render.export as export

    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    path = export.cached_onnx(model, W, H)
    old = onnx.load(str(path))
    kept = [p for p in old.metadata_props if not p.key.startswith(export.STAMP_PREFIX)]
    del old.metadata_props[:]
    old.metadata_props.extend(kept)
    onnx.save(old, str(path))  # as an older version wrote it: no stamp
    monkeypatch.setattr(export, "cache_problem", lambda directory=None: "not writable (read-only file system)")
    assert export.cached_onnx(model, W, H) == path  # was a CacheError
    edited = onnx.load(str(path))
    edited.metadata_props.add(key=export.STAMP_PREFIX + "size", value="8x8")
    onnx.save(edited, str(path))  # a stamp that does not match is damage: still refused
    with pytest.raises(export.CacheError, match="read-only"):
        export.cached_onnx(model, W, H)


def test_an_unknown_preset_is_named_as_such_not_as_a_mismatch(tmp_path):
    from neural_render.checkpoint import save_generator

    path = save_generator(build_generator("tiny"), tmp_path / "tiny.safetensors")
    with pytest.raises(ValueError, match="preset 'bogus': choose one of tiny, cpu, gpu"):
        Renderer(path, backend="torch", device="cpu", size=(W, H), preset="bogus")  # read "trained for 'bogus'"


def test_a_size_memory_cannot_hold_is_named(model, monkeypatch):
    """torch's own message gave a byte count ("DefaultCPUAllocator: can't allocate memory: you tried to
    allocate 6442450944 bytes"), not the size to change."""
    import neural_render.runtime.renderer as renderer_module

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


def test_why_a_backend_is_unavailable_is_said_in_a_few_words():
    """What `--profile --backend all` prints beside a backend it could not compare."""
    from neural_render.runtime import unavailable_reason

    assert unavailable_reason("no_such_backend_package", "cpu") == "not installed"
    assert unavailable_reason("onnxruntime", "cuda") == "needs a CUDA GPU"  # installed, and no GPU here
