"""``spikeflight train bc``: behaviour cloning of a diffusion policy from demonstrations."""

from __future__ import annotations

from pathlib import Path

import typer

from hardware.errors import SpikeflightError
from tools.progress import console, progress_bar

app = typer.Typer(no_args_is_help=True, help="Host-side training.")


def parse_widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError as exc:
        raise SpikeflightError(f"--hidden must be comma-separated integers, got {text!r}") from exc
    if not widths or min(widths) < 1:
        raise SpikeflightError(f"--hidden widths must be positive, got {text!r}")
    return widths


@app.command("bc")
def bc(
    task: str = typer.Option("hatch", "--task", "-t", help="task name or module:callable"),
    demos: Path = typer.Option(..., "--demos", "-d", help="demonstration .hdf5"),
    policy: str = typer.Option("sdp-sdli", "--policy", "-p", help="sdp | sdp-sdli | ann"),
    out: Path = typer.Option(..., "--out", "-o", help="run directory (resumes if it exists)"),
    iterations: int = typer.Option(20000, "--iterations", "-n", min=1),
    batch_size: int = typer.Option(256, "--batch-size", min=1),
    lr: float = typer.Option(3e-4, "--lr"),
    hidden: str = typer.Option("256,256", "--hidden",
                               help="hidden widths; the paper's size is 2048,2048"),
    micro_steps: int = typer.Option(4, "--micro-steps", "-T", min=2),
    rate_reg: float = typer.Option(0.3, "--rate-reg", help="firing-rate penalty weight"),
    sdli_invert: bool = typer.Option(False, "--sdli-invert", help="front-load the state"),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(2, "--threads", min=1),
    checkpoint_every: int = typer.Option(1000, "--checkpoint-every", min=1),
) -> None:
    """Train a spiking diffusion policy (or its ANN twin); checkpoints go to --out and an
    interrupted run continues from its last checkpoint when started again."""
    from hardware.sim.registry import make_env
    from policies.bc import TrainConfig, resumable_config, train_bc
    from policies.config import KINDS, PolicyConfig
    from policies.data import load_bc_data

    if policy not in KINDS:
        raise SpikeflightError(f"--policy must be one of {', '.join(KINDS)}, got {policy!r}")
    env = make_env(task)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    cfg = PolicyConfig(kind=policy, obs_dim=obs_dim, act_dim=act_dim, hidden=parse_widths(hidden),
                       micro_steps=micro_steps, sdli_invert=sdli_invert,
                       sdli_ramp_iters=min(5000, max(iterations // 2, 1)))
    data = load_bc_data(demos, cfg.chunk, obs_dim, act_dim)
    cfg = resumable_config(out, task, policy) or cfg  # checks before anything is drawn
    tcfg = TrainConfig(iterations=iterations, batch_size=batch_size, lr=lr, seed=seed,
                       threads=threads, checkpoint_every=checkpoint_every, rate_reg=rate_reg)
    console.print(f"{policy} on {task}: {len(data)} samples from {data.episodes} successful "
                  f"episodes, hidden {cfg.hidden}, T={cfg.micro_steps} -> {out}")
    with progress_bar() as bar:
        job = bar.add_task(f"train {policy}", total=iterations, status="")

        def on_step(i: int, loss: float) -> None:
            if i % 50 == 0 or i == iterations:
                bar.update(job, completed=i, status=f"loss {loss:.4f}")

        res = train_bc(task, data, cfg, tcfg, out, on_step=on_step)
    if res.resumed_from:
        console.print(f"resumed from iteration {res.resumed_from}")
    tail = res.losses[-100:]
    console.print(f"done: {res.iteration} iterations, mean loss of the last {len(tail)} "
                  f"{sum(tail) / max(len(tail), 1):.4f}; checkpoint {out}")
