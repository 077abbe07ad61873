"""Data-parallel fine-tuning: two gloo ranks holding half a batch each make the same
update as one process holding all of it, and ``train rl --nproc 2`` runs under torchrun
and resumes on one rank."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from policies.checkpoint import load_policy
from policies.dist import Comm
from policies.dppo import (
    Critic,
    DppoConfig,
    StepConstants,
    sample_chain,
    update,
)
from tests.policies.test_rl import toy_run  # noqa: F401  (a pytest fixture)

CFG = DppoConfig(ft_steps=4, clip_base=0.05, clip_top=0.2, target_kl=None)


def _setup(run: Path):
    torch.manual_seed(0)
    policy, _ = load_policy(run)
    actor = policy.denoiser.train()
    critic = Critic(3, hidden=16, blocks=1)
    consts = StepConstants.of(policy.schedule)
    g = torch.Generator().manual_seed(1)
    s = torch.rand(40, 3, generator=g) * 2 - 1
    chain, logp = sample_chain(copy.deepcopy(actor), actor, consts, s, policy.cfg.action_size,
                               CFG, g)
    batch = {"s": s, "chain": chain, "logp": logp, "adv": torch.randn(40, generator=g),
             "ret": torch.randn(40, generator=g)}
    return actor, critic, consts, batch


def _step(run: Path, comm: Comm) -> list[torch.Tensor]:
    actor, critic, consts, batch = _setup(run)
    part = list(comm.share(40))
    mine = {k: v[part] for k, v in batch.items()}
    update(actor, critic, torch.optim.Adam(actor.parameters(), 1e-3),
           torch.optim.Adam(critic.parameters(), 1e-2), consts, mine, CFG, epochs=1,
           minibatch=40, generator=torch.Generator().manual_seed(2), comm=comm)
    return [p.detach().clone() for p in [*actor.parameters(), *critic.parameters()]]


def _rank(rank: int, run: str, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    params = _step(Path(run), Comm(rank, 2))
    if rank == 0:
        torch.save(params, out)
    dist.destroy_process_group()


def test_two_ranks_make_the_update_of_one_process(toy_run: Path, tmp_path: Path) -> None:  # noqa: F811
    one = _step(toy_run, Comm())
    mp.spawn(_rank, args=(str(toy_run), str(tmp_path / "store"), str(tmp_path / "two.pt")),
             nprocs=2, join=True)
    two = torch.load(tmp_path / "two.pt")
    before = [p.detach() for p in _setup(toy_run)[0].parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(one, before, strict=False))  # it moved
    for a, b in zip(one, two, strict=True):
        assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()


def test_cli_runs_two_ranks_under_torchrun_and_resumes_on_one(toy_run: Path,  # noqa: F811
                                                               tmp_path: Path) -> None:
    exe = str(Path(sys.executable).parent / "spikeflight")
    base = [exe, "train", "rl", "--init", str(toy_run), "-o", str(tmp_path / "rl"), "--envs", "4",
            "--sync", "--eval-every", "0", "--critic-warmup", "1"]
    res = subprocess.run([*base, "--iterations", "2", "--nproc", "2"], capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "on 2 rank(s)" in res.stdout and "it 2: success" in res.stderr
    res = subprocess.run([*base, "--iterations", "3"], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "it 3: success" in res.stderr and "it 1:" not in res.stderr
    assert load_policy(tmp_path / "rl")[1]["iteration"] == 3


def _joined_rank(rank: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    with Comm.joined() as comm:
        total = float(comm.sum(torch.tensor(rank + 1.0)))
    Path(f"{out}.{rank}").write_text(f"{comm.world} {total} {dist.is_initialized()}")


def test_joined_ranks_leave_with_the_group_destroyed(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_joined_rank, args=(port, str(tmp_path / "r")), nprocs=2, join=True)
    for rank in (0, 1):
        assert (tmp_path / f"r.{rank}").read_text() == "2 3.0 False"
