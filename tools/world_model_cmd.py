"""``spikeflight train world-model`` (the teacher), ``spikeflight train distill`` (the
student) and ``spikeflight world-model eval`` (k-step open-loop error against recorded
simulator episodes)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from hardware.errors import SpikeflightError
from hardware.sim.obs_order import parse_obs_keys
from tools import json_out
from tools.options import ObsKeys, output_dir, output_file
from tools.plotting import pyplot, save_png
from tools.progress import console, progress_bar

app = typer.Typer(no_args_is_help=True, help="World models: evaluate (train: `train "
                  "world-model`).")

REPORT_K = (1, 2, 5, 10, 20, 30, 40, 50)


def _dims(task: str) -> tuple[int, int]:
    from hardware.sim.registry import task_env

    with task_env(task) as env:
        return env.observation_space.shape[0], env.action_space.shape[0]


def _with_progress(label: str, iterations: int, run: Callable[[Callable], Any]) -> Any:
    """``run(on_step)`` under a progress bar updated every 50 iterations with the loss."""
    with progress_bar() as bar:
        job = bar.add_task(label, total=iterations, status="")

        def on_step(i: int, loss: float) -> None:
            if i % 50 == 0 or i == iterations:
                bar.update(job, completed=i, status=f"loss {loss:.4f}")

        return run(on_step)


def train(
    out: Path = typer.Option(..., "--out", "-o", help="run directory (resumes if it exists)",
                             callback=output_dir),
    task: str = typer.Option("hatch", "--task", "-t", help="task name or module:callable"),
    data: list[Path] = typer.Option(..., "--data", "-d",
                                    help="episodes (.hdf5; repeat the option for several "
                                    "files: experts, noisy experts, policy rollouts)"),
    iterations: int = typer.Option(5000, "--iterations", "-n", min=1),
    members: int = typer.Option(5, "--members", min=1, help="ensemble members"),
    hidden: str = typer.Option("512,512,512", "--hidden", help="hidden widths per member"),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="per member"),
    lr: float = typer.Option(1e-3, "--lr"),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(2, "--threads", min=1),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", min=1),
    obs_keys: ObsKeys = None,
) -> None:
    """Train the teacher world model (an ensemble of probabilistic MLPs: next observation,
    reward and success per step, with its uncertainty) on every step of the episodes."""
    from policies.world_model import WorldModelConfig, load_transitions
    from policies.world_model_train import WorldModelTrainConfig, train_world_model
    from tools.train_cmd import parse_widths

    if not math.isfinite(lr) or lr <= 0:
        raise SpikeflightError(f"--lr must be a positive number, got {lr}")
    obs_dim, act_dim = _dims(task)
    cfg = WorldModelConfig(obs_dim, act_dim, members, list(parse_widths(hidden)))
    tcfg = WorldModelTrainConfig(iterations=iterations, batch_size=batch_size, lr=lr,
                                 checkpoint_every=checkpoint_every, seed=seed, threads=threads)
    trans = load_transitions([str(p) for p in data], obs_dim, act_dim, task,
                             parse_obs_keys(obs_keys))
    console.print(f"world model of {task}: {len(trans)} steps from {trans.episodes} episodes, "
                  f"{members} members x {cfg.hidden} -> {out}")
    _, losses = _with_progress("train world model", iterations, lambda on_step:
                               train_world_model(task, trans, cfg, tcfg, out, on_step=on_step))
    tail = losses[-100:]
    console.print(f"done: {iterations} iterations, mean loss of the last {len(tail)} "
                  f"{sum(tail) / max(len(tail), 1):.4f}; checkpoint {out}")


def distill(
    out: Path = typer.Option(..., "--out", "-o", help="run directory (resumes if it exists)",
                             callback=output_dir),
    teacher: Path = typer.Option(..., "--teacher", help="teacher run (`train world-model`)"),
    data: list[Path] = typer.Option(..., "--data", "-d",
                                    help="episodes (.hdf5; repeat for several files)"),
    iterations: int = typer.Option(5000, "--iterations", "-n", min=1),
    horizon: int = typer.Option(4, "--horizon", min=1, help="steps per prediction"),
    hidden: str = typer.Option("128,128", "--hidden", help="hidden widths"),
    batch_size: int = typer.Option(256, "--batch-size", min=1),
    lr: float = typer.Option(1e-3, "--lr"),
    sigma: float = typer.Option(0.3, "--sigma", min=0.0,
                                help="action perturbation (normalised units)"),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(2, "--threads", min=1),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", min=1),
    obs_keys: ObsKeys = None,
) -> None:
    """Distil the compact student world model (one prediction per H actions) from the
    teacher, on the episodes' windows with demonstrated and perturbed actions."""
    from policies.world_model_distill import DistillConfig, load_windows
    from policies.world_model_distill import distill as run_distill
    from policies.world_model_student import StudentConfig
    from policies.world_model_train import load_world_model
    from tools.train_cmd import parse_widths

    if not math.isfinite(lr) or lr <= 0:
        raise SpikeflightError(f"--lr must be a positive number, got {lr}")
    model, tcfg = load_world_model(teacher)
    cfg = StudentConfig(model.cfg.obs_dim, model.cfg.act_dim, horizon,
                        list(parse_widths(hidden)))
    dcfg = DistillConfig(iterations=iterations, batch_size=batch_size, lr=lr, sigma=sigma,
                         checkpoint_every=checkpoint_every, seed=seed, threads=threads)
    windows = load_windows([str(p) for p in data], cfg.obs_dim, cfg.act_dim, horizon,
                           tcfg["task"], parse_obs_keys(obs_keys))
    console.print(f"student of {tcfg['task']}: {len(windows)} windows of {horizon} steps, "
                  f"hidden {cfg.hidden} -> {out}")
    student, _ = _with_progress("distil world model", iterations, lambda on_step: run_distill(
        tcfg["task"], model, str(teacher), windows, cfg, dcfg, out, on_step=on_step))
    console.print(f"done: {iterations} iterations, {student.parameters_count():,} parameters, "
                  f"{student.macs():,} MACs per prediction; checkpoint {out}")


def load_any(run: Path) -> tuple:
    """A teacher or a student run, by the format its config declares."""
    from policies.checkpoint import CheckpointError, read_config
    from policies.world_model_distill import FORMAT as STUDENT
    from policies.world_model_distill import load_student
    from policies.world_model_train import FORMAT as TEACHER
    from policies.world_model_train import load_world_model

    for fmt, load in ((TEACHER, load_world_model), (STUDENT, load_student)):
        try:
            read_config(run, fmt)
        except CheckpointError as exc:
            if "format" in str(exc):
                continue
            raise
        return load(run)
    raise SpikeflightError(f"{run}: not a world-model run (neither {TEACHER} nor {STUDENT})")


@app.command("eval")
def evaluate(
    runs: list[Path] = typer.Argument(..., help="world-model run directories (teachers "
                                      "and students of one task)"),
    data: Path = typer.Option(..., "--data", "-d", help="held-out episodes (.hdf5)"),
    horizon: int = typer.Option(50, "--horizon", min=1, help="steps predicted open loop"),
    stride: int = typer.Option(10, "--stride", min=1, help="steps between starts"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    plot_out: Path | None = typer.Option(None, "--plot", help="PNG of the error against k",
                                         callback=output_file),
    obs_keys: ObsKeys = None,
) -> None:
    """k-step open-loop prediction error (k = 1..horizon) on recorded episodes, in the
    models' normalised observation units, beside the no-change baseline; teacher or
    student runs (a student predicts every H steps: NaN in between). One run: its result
    as the JSON object; several: ``{"runs": [...]}`` and one plot with every run."""
    from hardware.sim.dataset import read_episodes
    from policies.world_model_eval import kstep_errors

    loaded = [load_any(run) for run in runs]
    episodes = read_episodes(data, loaded[0][1]["task"], parse_obs_keys(obs_keys))
    results = []
    for run, (model, cfg) in zip(runs, loaded, strict=True):
        res = kstep_errors(model, episodes, horizon, stride)
        results.append({"task": cfg["task"], "run": str(run), "data": str(data),
                        "kind": type(model).__name__, "episodes": len(episodes),
                        "horizon_steps": getattr(model.cfg, "horizon", 1), **res})
    if plot_out is not None:
        _plot(results, plot_out)
    if as_json:
        print(json_out.dumps(results[0] if len(results) == 1 else {"runs": results}))
        return
    for res in results:
        _table(res, horizon)


def _table(res: dict, horizon: int) -> None:
    table = Table(title=f"open-loop error, {res['task']} ({res['episodes']} episodes), "
                        f"{res['run']}")
    for col in ("k", "model", "no change", "model (no flags)", "no change (no flags)", "starts"):
        table.add_column(col, justify="right")
    shown = [k for k in REPORT_K if k <= horizon and not math.isnan(res["model"][k - 1])]
    h = res["horizon_steps"]
    for k in shown or [k for k in range(h, horizon + 1, h)][:8]:
        table.add_row(str(k), *[f"{res[c][k - 1]:.4f}" for c in (
            "model", "no_change", "model_continuous", "no_change_continuous")],
            str(res["starts"][k - 1]))
    console.print(table)


def _plot(results: list[dict], path: Path) -> None:
    """Error against k per run (students: a marker every H steps), no change dashed."""
    import numpy as np

    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    for res in results:
        k, e = np.asarray(res["k"]), np.asarray(res["model_continuous"], dtype=float)
        ok = np.isfinite(e)
        name = Path(res["run"]).name
        ax.plot(k[ok], e[ok], marker="o" if res["horizon_steps"] > 1 else None,
                markersize=3, label=f"{name} ({res['kind'].replace('WorldModel', '')})")
    first = results[0]
    ax.plot(first["k"], first["no_change_continuous"], linestyle="--", color="0.4",
            label="no change")
    ax.set_xlabel("k (steps open loop)")
    ax.set_ylabel("RMSE, flags left out (normalised units)")
    ax.set_yscale("log")
    ax.set_title(f"{first['task']}: k-step prediction error")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


@app.command("anomalies")
def anomalies(
    image: Path = typer.Argument(..., help="signed image with a world model (.sfimg)"),
    pubkey: Path = typer.Option(..., "--pubkey", help="public key the image must be signed by"),
    episodes: int = typer.Option(10, "--episodes", "-n", min=1, help="episodes per fault"),
    seed: int = typer.Option(10_000, "--seed", help="first episode seed (held out)"),
    start: int = typer.Option(20, "--start", min=0, help="step at which each fault begins"),
    backend: str = typer.Option("onnx-fixed", "--backend"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Fly the image with its world-model guard under every injected fault and nominally:
    detection rate and delay per fault, false alarms."""
    from runtime.loader import load_flight_policy
    from tools.anomalies import measure
    from tools.progress import episode_counter

    policy = load_flight_policy(image, pubkey)
    if not policy.manifest.get("world_model"):
        raise SpikeflightError(f"{image}: the image carries no world model (compile it with "
                               "--world-model)")
    with progress_bar() as bar:
        job = bar.add_task(f"anomalies on {policy.task}", total=episodes * 5, status="")
        count = episode_counter(bar, job)
        rows = measure(policy, policy.task, episodes, seed, start, backend,
                       on_episode=lambda _fault, res: count(res))
    out = {"image": str(image), "task": policy.task, "start": start, "episodes": episodes,
           "threshold": policy.manifest["world_model"]["threshold"], "faults": rows}
    if as_json:
        print(json_out.dumps(out))
        return
    table = Table(title=f"anomaly detection, {policy.task} (faults from step {start})")
    for col in ("fault", "episodes", "faulted", "detected", "delay s (median / max)",
                "false alarms", "success"):
        table.add_column(col, justify="right")
    for r in rows:
        delay = "-" if r["delay_s_median"] is None else \
            f"{r['delay_s_median']:.2f} / {r['delay_s_max']:.2f}"
        table.add_row(r["fault"], str(r["episodes"]), str(r["faulted"]), str(r["detected"]),
                      delay, str(r["false_alarms"]), str(r["success"]))
    console.print(table)
