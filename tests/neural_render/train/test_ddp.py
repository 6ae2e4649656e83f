"""Two gloo processes train a few steps under the torchrun environment; the replicas must agree."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from safetensors.torch import save_file

    from neural_render.train.config import resolve
    from neural_render.train.loop import train

    cfg = resolve("tiny", "vid2vid", steps=2, sample_every=0, ckpt_every=0, log_every=1)
    cfg.warmup_max = 2
    trainer = train(cfg, out, show_progress=False)
    tensors = {f"G.{k}": v.contiguous() for k, v in trainer.G.state_dict().items()}
    tensors.update({f"D.{k}": v.contiguous() for k, v in trainer.D_img.state_dict().items()})
    save_file(tensors, os.path.join(out, f"rank{rank}.safetensors"))


@pytest.mark.slow
def test_two_gloo_replicas_agree(tmp_path):
    from safetensors.torch import load_file

    from neural_render.model import build_generator

    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert r0.keys() == r1.keys()
    for key in r0:
        assert torch.equal(r0[key], r1[key]), f"replicas differ at {key}"
    torch.manual_seed(0)
    initial = build_generator("tiny").state_dict()
    assert any(not torch.equal(initial[k], r0[f"G.{k}"]) for k in initial)
    assert (tmp_path / "generator.safetensors").is_file()  # rank 0 saved
