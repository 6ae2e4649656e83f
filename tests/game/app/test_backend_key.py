"""The K key's backend list: a drive started with --backend remote --server URL can switch to a local
backend and back to the render service at that URL (game.app.actions.backend on a stand-in App, no window)."""

import types

import game.app.actions as actions


class Hud:
    def __init__(self):
        self.said: list[str] = []

    def notify(self, text, **_):
        self.said.append(text)


def renderer(backend: str):
    return types.SimpleNamespace(backend_name=backend, device_name="here", precision="fp32", compiled=False,
                                 history_enabled=True, close=lambda: None)


def test_k_cycles_through_the_remote_backend_when_a_server_is_given(monkeypatch):
    built = []

    def make_renderer(model, backend, device, precision, size, compile, server=None):
        built.append((backend, server))
        return renderer(backend)

    monkeypatch.setattr(actions, "available_backends", lambda device: ["torch"])
    monkeypatch.setattr(actions, "make_renderer", make_renderer)
    app = types.SimpleNamespace(config=types.SimpleNamespace(device="cpu", precision="fp32", compile=False,
                                                             server="grpc://127.0.0.1:8001"),
                                renderer=renderer("remote"), backend_tried=None, model=types.SimpleNamespace(model=None),
                                size=(64, 32), hud=Hud())
    actions.backend(app)
    actions.backend(app)
    assert built == [("torch", "grpc://127.0.0.1:8001"), ("remote", "grpc://127.0.0.1:8001")]
    assert app.renderer.backend_name == "remote"


def test_without_a_server_k_offers_no_remote_backend(monkeypatch):
    monkeypatch.setattr(actions, "available_backends", lambda device: ["torch"])
    app = types.SimpleNamespace(config=types.SimpleNamespace(device="cpu", server=None), renderer=renderer("torch"),
                                backend_tried=None, hud=Hud())
    actions.backend(app)
    assert app.hud.said == ["torch is the only backend available here"]
