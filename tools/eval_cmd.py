"""``spikeflight eval``: closed-loop evaluation of a checkpoint, with energy estimates."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.table import Table

from hardware.errors import SpikeflightError
from tools import json_out
from tools.progress import console, progress_bar

MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """The cores this process may use, at most ``MAX_DEFAULT_WORKERS``."""
    return max(1, min(len(os.sched_getaffinity(0)), MAX_DEFAULT_WORKERS))


def evaluate_cmd(
    checkpoint: Path = typer.Argument(..., help="run directory or its policy.safetensors"),
    task: str | None = typer.Option(None, "--task", "-t",
                                    help="default: the task the checkpoint was trained on"),
    episodes: int = typer.Option(50, "--episodes", "-n", min=1),
    seed: int = typer.Option(10_000, "--seed", help="first seed (held out from demos)"),
    ddim_steps: int | None = typer.Option(None, "--ddim-steps",
                                          help="DDIM over this many steps (default: DDPM, all K)"),
    execute: int | None = typer.Option(None, "--execute", min=1,
                                       help="actions executed per chunk before replanning "
                                            "(default: the whole chunk)"),
    takeover: bool = typer.Option(False, "--takeover",
                                  help="let the scripted expert take over each failed "
                                       "episode at a random chunk (cabin tasks)"),
    workers: int = typer.Option(default_workers(), "--workers", "-w", min=1,
                                help="processes, each with its own environments (default: "
                                "the cores); the result is the same for any count"),
    batch: int = typer.Option(25, "--batch", min=1, help="environments stepped together per "
                              "worker (at most workers x batch exist at once)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Success rate (95% CI), episode length, firing rates, synaptic ops and energy per
    chunk (cmos45-horowitz2014 model) of a policy and of its ANN twin."""
    from policies.checkpoint import load_policy
    from policies.evaluate import evaluate_checkpoint
    from policies.ops import energy_per_chunk

    policy, meta = load_policy(checkpoint)
    task = task or meta["task"]
    cfg = policy.cfg
    if execute is not None and execute > cfg.chunk:
        raise SpikeflightError(f"--execute must be at most the chunk size {cfg.chunk}")
    if ddim_steps is not None and not 1 <= ddim_steps <= cfg.diffusion_steps:
        raise SpikeflightError(f"--ddim-steps must be in 1..{cfg.diffusion_steps}, "
                               f"got {ddim_steps}")
    with progress_bar() as bar:
        job = bar.add_task(f"eval {cfg.kind} on {task}", total=episodes, status="")
        won = 0

        def on_group(n: int, ok: int) -> None:
            nonlocal won
            won += ok
            bar.update(job, advance=n, status=f"success {won}")

        res = evaluate_checkpoint(str(checkpoint), policy, task, episodes, workers,
                                  seed0=seed, batch=batch, on_episode=on_group,
                                  ddim_steps=ddim_steps, execute=execute, takeover=takeover)
    energy = energy_per_chunk(cfg, res.firing_rates, ddim_steps)
    lo, hi = res.success_ci95
    report = {
        "checkpoint": str(checkpoint), "task": task, "policy": cfg.kind,
        "episodes": res.episodes, "successes": res.successes,
        "success_rate": res.success_rate, "success_ci95": [lo, hi],
        "mean_episode_length": sum(res.lengths) / len(res.lengths),
        "chunks": res.chunks, "denoising_steps": ddim_steps or cfg.diffusion_steps,
        "executed_per_chunk": execute or cfg.chunk,
        "micro_steps": cfg.micro_steps if cfg.spiking else None,
        "firing_rates": res.firing_rates, "failures": res.failures,
        "furthest_phase": res.furthest,
        "takeover": ({"episodes": res.takeover_episodes, "successes": res.takeover_successes}
                     if takeover else None),
        **energy,
    }
    if as_json:
        print(json_out.dumps(report))
        return
    console.print(f"[bold]{cfg.kind}[/bold] on {task}: success {res.successes}/{res.episodes} "
                  f"= {res.success_rate:.0%} (95% CI {lo:.0%}..{hi:.0%}), mean episode length "
                  f"{report['mean_episode_length']:.1f} steps")
    failed = {k: v for k, v in res.failures.items() if v}
    if failed:
        console.print("failed episodes by cause: " + ", ".join(f"{k} {v}" for k, v in
                                                               failed.items()))
        console.print("furthest expert phase of the failed episodes: "
                      + ", ".join(f"{k} {v}" for k, v in res.furthest.items() if v))
    if takeover and res.takeover_episodes:
        console.print(f"expert taking over the failed episodes at a random chunk: "
                      f"{res.takeover_successes}/{res.takeover_episodes} succeed")
    if res.firing_rates:
        console.print("firing rates per population (spikes/neuron/micro-step): "
                      + ", ".join(f"{r:.3f}" for r in res.firing_rates))
    table = Table("per chunk", cfg.kind, "ANN twin", title=f"energy model {energy['model']}")
    if cfg.spiking:
        table.add_row("analog MACs", f"{energy['analog_macs_per_chunk']:,.0f}", "")
        table.add_row("synaptic ops (AC)", f"{energy['synops_per_chunk']:,.0f}", "")
    table.add_row("MACs", "", f"{energy['ann_macs_per_chunk']:,.0f}")
    table.add_row("energy (uJ)", f"{energy['policy_j_per_chunk'] * 1e6:.3f}",
                  f"{energy['ann_j_per_chunk'] * 1e6:.3f}")
    table.add_row("ratio vs ANN twin", f"{energy['energy_ratio_vs_ann']:.3f}", "1.000")
    console.print(table)
