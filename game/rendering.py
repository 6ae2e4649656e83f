"""Which generator to run and through which backend: --model/--preset/--backend/--device/--precision.

No --model: the shipped model (neural_render.checkpoint.DEFAULT_MODEL_PATH) when it exists, else an
UNTRAINED generator of --preset (default cpu), which the console and the screen say loudly: its output
is noise-like colour blobs, not a photo. A --model path that is missing or corrupt is an error that
tells how to train one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from game.cli import RETRAIN_COMMAND, GameConfig, LaunchError

DEFAULT_PRESET = "cpu"
SHIPPED_PRESETS = ("cpu",)  # presets with trained weights in models/ (see models/cpu.md)


@dataclass
class ModelChoice:
    model: object  # neural_render.model.Vid2VidGenerator
    label: str  # shown in the HUD
    path: Path | None
    untrained: bool
    preset: str


def load_model(config: GameConfig) -> ModelChoice:
    """--model, else the shipped weights of --preset (models/<preset>.safetensors). A preset that ships
    no weights (tiny, gpu for now) runs untrained, loudly; a shipped file that is missing or corrupt is
    a clear error naming the retrain command, never a silent fallback."""
    from neural_render.checkpoint import CheckpointError, default_model_path, load_generator

    preset = config.preset or DEFAULT_PRESET
    path = Path(config.model) if config.model is not None else default_model_path(preset)
    if config.model is None and not path.exists():
        if preset not in SHIPPED_PRESETS:
            return untrained_model(preset)
        raise LaunchError(f"the shipped model {path} is missing (an incomplete checkout or install?). "
                          f"Restore it with `git checkout -- models/`, or retrain it with:\n  {RETRAIN_COMMAND}")
    flag = "--model" if config.model is not None else "the shipped model"
    if not path.exists():
        raise LaunchError(f"{flag} {path}: no such file. Train one with:\n  {RETRAIN_COMMAND}")
    try:
        model = load_generator(path, preset=config.preset)
    except CheckpointError as error:
        raise LaunchError(f"{flag} {path}: {error}\nRetrain with:\n  {RETRAIN_COMMAND}") from None
    model.eval()
    preset = getattr(getattr(model, "config", None), "name", config.preset or "?")
    return ModelChoice(model, f"{path.stem} ({preset})", path, untrained=False, preset=preset)


def untrained_model(preset: str) -> ModelChoice:
    """A freshly initialised generator (seeded, so two runs look the same)."""
    import torch

    from neural_render.model import build_generator

    torch.manual_seed(0)
    model = build_generator(preset).eval()
    return ModelChoice(model, f"{preset} UNTRAINED", None, untrained=True, preset=preset)


def resolve_device(config: GameConfig) -> str:
    if config.device is not None:
        return config.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_resolution(preset: str, device: str) -> tuple[int, int]:
    """Render size when --res is not given: what the preset runs interactively on that device."""
    if preset == "gpu":
        return 1024, 512
    return (512, 256) if device.startswith("cuda") else (256, 128)


def check_size(choice: ModelChoice, size: tuple[int, int], flag: str) -> None:
    """The generator downsamples by a power of two, so sizes must be multiples of it; say so up front,
    naming the flag, rather than from deep inside a backend."""
    check = getattr(getattr(choice.model, "config", None), "check_size", None)
    if check is None:
        return
    try:
        check(*size)
    except ValueError as error:
        raise LaunchError(f"{flag}: {error}") from None


def make_renderer(model, backend: str, device: str | None, precision: str, size: tuple[int, int]):
    """A neural_render.runtime.Renderer; LaunchError naming the flag when the backend cannot start."""
    from neural_render.runtime import Renderer

    try:
        return Renderer(model, backend=backend, device=device, precision=precision, size=size)
    except (ValueError, RuntimeError, ImportError) as error:
        raise LaunchError(
            f"--backend {backend} --device {device or 'auto'} --precision {precision}: {error}"
        ) from None


def available_backends(device: str | None) -> list[str]:
    from neural_render.runtime import available_backends as available

    return list(available(device))
