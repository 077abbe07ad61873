"""``spikeflight bench``: environment speed and expert success, printed as tables."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import typer
from rich.table import Table

from hardware.errors import SpikeflightError
from tools import json_out
from tools.progress import console, progress_bar

app = typer.Typer(no_args_is_help=True, help="Benchmarks (medians, side by side, one run).")

SPEED_TARGET = 2000.0  # control steps per second per core (issue 2)
SUCCESS_TARGET = 0.95


def _tasks(task: str | None) -> list[str]:
    from hardware.sim.registry import TASKS, make_env

    if task is None:
        return list(TASKS)
    make_env(task).close()  # validates the name with the usual error
    return [task]


@app.command("env")
def env(
    task: str | None = typer.Option(None, "--task", "-t", help="one task (default: all five)"),
    steps: int = typer.Option(2000, "--steps", min=100),
    repeats: int = typer.Option(5, "--repeats", min=1),
    robosuite_python: str | None = typer.Option(
        None, "--robosuite-python",
        help="a Python with robosuite installed, for the side-by-side ratio"),
) -> None:
    """Control steps per second per core under random actions (median of repeats), and
    the ratio to robosuite's Door scene when robosuite is installed."""
    from tools.bench import env_speed, robosuite_speed

    results = [env_speed(t, steps, repeats) for t in _tasks(task)]
    ref = robosuite_speed(robosuite_python)
    table = Table("env", "median steps/s", "min", "max", f">= {SPEED_TARGET:.0f}",
                  "x robosuite")
    for r in results:
        ratio = f"{r.median / ref.median:.1f}" if ref else "n/a"
        table.add_row(r.name, f"{r.median:,.0f}", f"{min(r.steps_per_s):,.0f}",
                      f"{max(r.steps_per_s):,.0f}", "yes" if r.median >= SPEED_TARGET else "NO",
                      ratio)
    if ref:
        table.add_row(ref.name, f"{ref.median:,.0f}", f"{min(ref.steps_per_s):,.0f}",
                      f"{max(ref.steps_per_s):,.0f}", "", "1.0")
    console.print(table)
    if not ref:
        console.print("robosuite is not installed: no ratio (install robosuite==1.5.1 in a "
                      "virtualenv and pass --robosuite-python PATH/bin/python)")
    if not all(r.median >= SPEED_TARGET for r in results):
        raise typer.Exit(1)


@app.command("expert")
def expert(
    task: str | None = typer.Option(None, "--task", "-t", help="one task (default: all five)"),
    episodes: int = typer.Option(100, "--episodes", "-n", min=1),
    seed: int = typer.Option(0, "--seed", help="seeds seed .. seed + episodes - 1"),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="worker processes"),
) -> None:
    """Scripted-expert success rate per task over seeded episodes."""
    from tools.bench import expert_success

    tasks = _tasks(task)
    chunks = [list(range(seed + i, seed + episodes, jobs)) for i in range(jobs)]
    chunks = [c for c in chunks if c]
    rows = []
    with ProcessPoolExecutor(jobs) as pool, progress_bar() as bar:
        job = bar.add_task("expert episodes", total=len(tasks) * len(chunks), status="")
        for t in tasks:
            parts = []
            for fut in [pool.submit(expert_success, t, c) for c in chunks]:
                parts.append(fut.result())
                bar.update(job, advance=1, status=t)
            ok = sum(p[0] for p in parts)
            length = sum(p[1] * len(c) for p, c in zip(parts, chunks, strict=True)) / episodes
            rows.append((t, ok, length))
    table = Table("task", "success", "rate", "mean length", f">= {SUCCESS_TARGET:.0%}")
    for t, ok, length in rows:
        table.add_row(t, f"{ok}/{episodes}", f"{ok / episodes:.0%}", f"{length:.0f}",
                      "yes" if ok / episodes >= SUCCESS_TARGET else "NO")
    console.print(table)
    if not all(ok / episodes >= SUCCESS_TARGET for _, ok, _ in rows):
        raise typer.Exit(1)


@app.command("latency")
def latency(
    chunks: int = typer.Option(200, "--chunks", min=10, help="observations (one chunk each)"),
    batches: str = typer.Option("1,4,16,64", "--batches",
                                help="batch sizes B of the per-sample timing ('' for none)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """Per-chunk latency of the shipped policy: runtime ONNX graphs vs snnTorch eager and
    vs the chunk's matrix-vector products alone in numpy (one thread, same run), and the
    per-sample latency of batched calls. Target: ONNX float >= 10x faster than snnTorch;
    exit 1 if it is missed."""
    from policies.checkpoint import shipped
    from tools.latency import chunk_latency

    try:
        sizes = tuple(int(b) for b in batches.split(",") if b.strip())
    except ValueError:
        raise SpikeflightError(f"--batches {batches!r}: comma-separated integers") from None
    if any(b < 1 or b > 1024 for b in sizes):
        raise SpikeflightError(f"--batches {batches!r}: each between 1 and 1024")
    with console.status("timing chunks"):
        res = chunk_latency(shipped("hatch"), chunks, sizes)
    ref, bound = res["snntorch_eager"]["median_ms"], res["matvec"]["median_ms"]
    for d in res.values():
        d["speedup_vs_snntorch"] = ref / d["median_ms"]
        d["ratio_to_matvec"] = d["median_ms"] / bound
    if as_json:
        print(json_out.dumps(res))
    else:
        table = Table("backend", "median ms/chunk", "p99 ms/chunk", "speed-up vs snnTorch",
                      "x numpy bound",
                      title=f"per-chunk latency, K = 20, one thread, {chunks} chunks "
                      "(_bN: per sample, N per call)")
        for name, d in res.items():
            table.add_row(name, f"{d['median_ms']:.3f}", f"{d['p99_ms']:.3f}",
                          f"{d['speedup_vs_snntorch']:.1f}x", f"{d['ratio_to_matvec']:.2f}")
        console.print(table)
    if ref / res["onnx_float"]["median_ms"] < 10:
        raise typer.Exit(1)


@app.command("flash")
def flash_bench(
    image: Path | None = typer.Option(None, "--image",
                                      help="image to upload (default: the shipped hatch "
                                      "policy compiled for each target, its loihi2 image)"),
    pubkey: Path | None = typer.Option(None, "--pubkey", help="its public key (with --image)"),
    repeats: int = typer.Option(5, "--repeats", min=1, help="uploads per link"),
) -> None:
    """Upload throughput to a device agent over UDP on loopback and over a pty (median of
    full uploads; targets >= 1 MB/s and >= 250 kB/s), and image sizes per target. Exit 1
    if a target is missed."""
    import tempfile

    from runtime.image import load_image, read_image
    from tools.flash_bench import upload_throughput

    with tempfile.TemporaryDirectory() as tmp:
        sizes: dict[str, int] = {}
        if image is None:
            image, pubkey, sizes = _default_images(Path(tmp))
        elif pubkey is None:
            raise SpikeflightError("--image needs --pubkey")
        else:
            sizes = {read_image(load_image(image)).header.target: image.stat().st_size}
        with console.status("uploading"):
            results = [upload_throughput(image, pubkey, link, repeats)
                       for link in ("udp", "serial")]
    if sizes:
        table = Table("target", "image bytes", title="image size per target")
        for target, n in sizes.items():
            table.add_row(target, f"{n:,}")
        console.print(table)
    table = Table("link", "target", "image bytes", "median kB/s", "min", "max", "target kB/s",
                  "met",
                  title=f"upload throughput, {repeats} full uploads each")
    for r in results:
        rates = r["bytes_per_s"]
        table.add_row(r["link"], r["target"], f"{r['bytes']:,}", f"{r['median_bps'] / 1e3:,.0f}",
                      f"{min(rates) / 1e3:,.0f}", f"{max(rates) / 1e3:,.0f}",
                      f"{r['target_bps'] / 1e3:,.0f}",
                      "yes" if r["median_bps"] >= r["target_bps"] else "NO")
    console.print(table)
    if any(r["median_bps"] < r["target_bps"] for r in results):
        raise typer.Exit(1)


@app.command("hil")
def hil_bench(
    image: Path | None = typer.Option(None, "--image",
                                      help="image to fly (default: the shipped hatch policy "
                                      "compiled for cpu-fixed)"),
    pubkey: Path | None = typer.Option(None, "--pubkey", help="its public key (with --image)"),
    episodes: int = typer.Option(5, "--episodes", "-n", min=1),
    backend: str = typer.Option("onnx-fixed", "--backend"),
) -> None:
    """Real-time hardware-in-the-loop at 20 Hz: the device agent in its own process, the
    plant here, over a pty and over UDP on loopback (nominal scenario); deadline-miss rate
    and round-trip latency percentiles per link. Exit 1 if a deadline was missed."""
    import tempfile

    import numpy as np

    from hardware.hil.plant import DEADLINE_FRACTION
    from hardware.hil.scenarios import NOMINAL
    from runtime.image import load_image, read_image
    from tools import hil

    with tempfile.TemporaryDirectory() as tmp:
        if image is None:
            image, pubkey = _compile_default(Path(tmp), "cpu-fixed")
        elif pubkey is None:
            raise SpikeflightError("--image needs --pubkey")
        img = read_image(load_image(image))
        target, task = img.header.target, img.manifest["task"]
        storage = Path(tmp) / "device"
        with console.status("flashing"):
            hil.provision(image, pubkey, storage, target, backend)
        rows = []
        for link in ("serial:pty", "udp:127.0.0.1:0"):
            with console.status(f"{episodes} real-time episodes over {link}"):
                res = hil.run_scenario(NOMINAL, storage, pubkey, target, task,
                                       range(10_000, 10_000 + episodes), "real", link, backend)
            eps = res["plant"]
            lat = np.concatenate([e["latencies_ms"] for e in eps])
            ticks = sum(e["steps"] for e in eps)
            rows.append((link, ticks, sum(e["deadline_misses"] for e in eps), lat,
                         sum(e["success"] for e in eps)))
    deadline = 50.0 * DEADLINE_FRACTION
    table = Table("link", "ticks", "deadline misses", "miss rate", "p50 ms", "p99 ms", "max ms",
                  "success", title=f"HIL at 20 Hz on {task} ({backend}), deadline "
                  f"{deadline:.0f} ms into the tick")
    for link, ticks, misses, lat, wins in rows:
        table.add_row(link, str(ticks), str(misses), f"{misses / ticks:.2%}",
                      f"{np.median(lat):.2f}", f"{np.percentile(lat, 99):.2f}",
                      f"{lat.max():.2f}", f"{wins}/{episodes}")
    console.print(table)
    if any(r[2] for r in rows):
        raise typer.Exit(1)


def _compile_shipped(root: Path, target: str, private: Path) -> Path:
    """The shipped hatch policy compiled for ``target`` (2 ground episodes per operating
    point: enough for sizes and timing) and signed with ``private``."""
    from compiler.build import CompileOptions, compile_policy
    from policies.checkpoint import shipped
    from runtime.image import write_image
    from runtime.keys import load_private_key

    res = compile_policy(shipped("hatch"), CompileOptions(target=target, ground_episodes=2),
                         load_private_key(private))
    return write_image(root / f"hatch-{target}.sfimg", res.image)


def _compile_default(root: Path, target: str) -> tuple[Path, Path]:
    """(image, public key) of the shipped policy for ``target``."""
    from runtime.keys import save_keypair

    private, public = save_keypair(root / "bench")
    with console.status(f"compiling the shipped policy for {target}"):
        return _compile_shipped(root, target, private), public


@app.command("rl-gradient")
def rl_gradient(
    init: Path = typer.Option(..., "--init", help="checkpoint whose policy gradient to probe"),
    task: str | None = typer.Option(None, "--task", "-t",
                                    help="default: the checkpoint's task"),
    envs: int = typer.Option(64, "--envs", min=2, help="episodes per rollout"),
    rollouts: int = typer.Option(4, "--rollouts", min=2, help="independent rollouts"),
    ft_steps: int = typer.Option(10, "--ft-steps", min=1),
    tune: str = typer.Option("all", "--tune", help="all | readout"),
    std_floor: float = typer.Option(0.1, "--std-floor", min=1e-3),
    logp_std_floor: float = typer.Option(0.1, "--logp-std-floor", min=1e-3),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """How much signal one L-SDPPO iteration's gradient holds: the cosine between policy
    gradients estimated from independent rollouts of the same policy (about 0: noise),
    and between the sums of the two halves of the rollouts (twice the episodes)."""
    import tempfile
    from dataclasses import replace

    from policies.dppo import DppoConfig
    from policies.rl import RlConfig
    from policies.rl_probe import gradient_agreement
    from tools.train_cmd import rl_target

    task, _ = rl_target(init, task, tune, ft_steps)
    cfg = RlConfig(envs=envs, asynchronous=False, init=str(init), tune=tune, seed=seed,
                   dppo=replace(DppoConfig(), ft_steps=ft_steps, sigma_min=std_floor,
                                sigma_lp_min=logp_std_floor))
    with progress_bar() as bar, tempfile.TemporaryDirectory() as tmp:
        job = bar.add_task("rollouts", total=rollouts, status="")

        def done(r: int, wins: int) -> None:
            bar.update(job, completed=r + 1, status=f"rollout {r + 1}: {wins}/{envs} succeed")
        res = gradient_agreement(task, cfg, rollouts, Path(tmp) / "probe", done).to_dict()
    if as_json:
        print(json_out.dumps(res))
        return
    table = Table("estimate", "episodes", "cosine", title=f"policy-gradient agreement, {task}")
    table.add_row("single rollouts, every pair", str(envs),
                  f"{res['pairwise_cosine_mean']:.3f} (sd {res['pairwise_cosine_sd']:.3f})")
    if res["halves_cosine"] is not None:
        table.add_row("half against half", str(envs * rollouts // 2),
                      f"{res['halves_cosine']:.3f}")
    console.print(table)
    console.print(f"same sign: {res['sign_agreement_mean']:.1%} of the parameters; "
                  f"successes per rollout: {res['successes']}")


def _default_images(root: Path) -> tuple[Path, Path, dict[str, int]]:
    """The shipped policy for every target; (loihi2 image, public key, sizes)."""
    from runtime.image import TARGETS
    from runtime.keys import save_keypair

    private, public = save_keypair(root / "bench")
    with console.status("compiling the shipped policy for each target"):
        paths = {t: _compile_shipped(root, t, private) for t in TARGETS}
    return paths["loihi2"], public, {t: p.stat().st_size for t, p in paths.items()}


@app.command("rl")
def rl_bench(
    init: Path = typer.Option(Path("policies/pretrained/hatch-sdp-sdli"), "--init",
                              help="checkpoint to fine-tune"),
    task: str = typer.Option("hatch", "--task", "-t"),
    envs: int = typer.Option(8, "--envs", min=2),
    iterations: int = typer.Option(3, "--iterations", min=2),
) -> None:
    """Environment steps per second of L-SDPPO fine-tuning (rollout + update): envs
    in-process, one process per env, and 2 data-parallel ranks, side by side."""
    from tools.rl_bench import rl_throughput

    with console.status("fine-tuning iterations"):
        res = rl_throughput(init, task, envs, iterations)
    base = res["1 worker"]
    table = Table("run", "env steps/s", "x 1 worker",
                  title=f"L-SDPPO on {task}, {envs} envs, iterations 2..{iterations}")
    for name, rate in res.items():
        table.add_row(name, f"{rate:,.0f}", f"{rate / base:.2f}")
    console.print(table)
