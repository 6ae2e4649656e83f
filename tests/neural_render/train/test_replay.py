"""Training clips from recorded sessions (neural_render/train/data_replay.py)."""

import numpy as np
import pytest

from carla_bridge.core.frames import Control, SceneFrame
from carla_bridge.session import SessionRecorder
from neural_render.train.augment import AugmentConfig
from neural_render.train.data_replay import ReplayClips

NO_AUG = AugmentConfig(flip_p=0.0, crop_scale_max=1.0, label_noise_p=0.0)


def _record(path, frames: int, rgb: bool, record_format: str = "folder") -> None:
    w, h = 32, 16
    with SessionRecorder(path, {"source": "test", "delta_s": 0.05}, size=(w, h), record_rgb=rgb, video=False,
                         record_format=record_format) as rec:
        for i in range(frames):
            labels = np.full((h, w), i % 5, np.uint8)
            flow = np.zeros((h, w, 2), np.float32)
            flow[..., 0] = 1.0
            image = np.full((h, w, 3), 20 * i, np.uint8)
            frame = SceneFrame(index=i, time_s=0.05 * i, labels=labels, flow=flow, rgb=image, cut=i == 0)
            rec.add(frame, Control(), None, {})
    assert rec.error is None


def test_sessions_give_consecutive_clips_with_flow(tmp_path):
    _record(tmp_path / "s1", 7, rgb=True)
    clips = iter(ReplayClips(tmp_path, 32, 16, length=3, base_seed=0, augment=NO_AUG))
    first, second = next(clips), next(clips)
    assert first["rgb"].shape == (3, 3, 16, 32)
    assert first["has_flow"].tolist() == [0.0, 1.0, 1.0]
    assert float(first["flow"][1, 0].mean()) == 1.0
    # frames 0-2 then 3-5 (brightness 20 * index)
    assert [int(c["rgb"][t, 0, 0, 0]) for c in (first, second) for t in range(3)] == [0, 20, 40, 60, 80, 100]


def test_mcap_sessions_train_as_folders_do(tmp_path):
    _record(tmp_path / "s1.mcap", 7, rgb=True, record_format="mcap")
    for root in (tmp_path, tmp_path / "s1.mcap"):  # a folder of sessions, or the file itself
        clips = iter(ReplayClips(root, 32, 16, length=3, base_seed=0, augment=NO_AUG))
        first, second = next(clips), next(clips)
        assert first["has_flow"].tolist() == [0.0, 1.0, 1.0]
        assert [int(c["rgb"][t, 0, 0, 0]) for c in (first, second) for t in range(3)] == [0, 20, 40, 60, 80, 100]


def test_sessions_without_rgb_are_skipped_with_a_clear_error(tmp_path, capsys):
    _record(tmp_path / "no_rgb", 3, rgb=False)
    with pytest.raises(ValueError, match="no usable session with rgb"):
        ReplayClips(tmp_path, 32, 16, length=2, base_seed=0, augment=NO_AUG)
    assert "has no rgb" in capsys.readouterr().out
    _record(tmp_path / "with_rgb", 4, rgb=True)
    ds = ReplayClips(tmp_path, 32, 16, length=2, base_seed=0, augment=NO_AUG)
    assert [p.name for p in ds.sessions] == ["with_rgb"]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_resumed_stream_continues_where_an_uninterrupted_one_was(tmp_path, monkeypatch, workers):
    from types import SimpleNamespace

    from neural_render.train import data_replay

    _record(tmp_path / "s1", 7, rgb=True)  # two sessions of different lengths: each worker's stream differs
    _record(tmp_path / "s2", 10, rgb=True)

    def steps(start: int, count: int) -> list[int]:
        """Second-frame brightness of the clips of steps start.., taken round-robin like the DataLoader."""
        streams = []
        for w in range(workers):
            monkeypatch.setattr(data_replay, "get_worker_info", lambda w=w: SimpleNamespace(num_workers=workers, id=w))
            clips = iter(ReplayClips(tmp_path, 32, 16, length=3, base_seed=0, augment=NO_AUG, start_step=start))
            streams.append([int(next(clips)["rgb"][1, 0, 0, 0]) for _ in range(count)])
        return [streams[k % workers][k // workers] for k in range(count)]

    assert steps(3, 5) == steps(0, 8)[3:]
