"""``spikeflight power``: profile, compare and report the energy of policy images.

Exit codes: 0 every budget verdict PASS (or no budget); 3 a WARN (above ``--warn-at`` x
budget, within it); 4 a FAIL (over budget; the message says by how much); 2 bad input
(unknown model, missing sensor without ``--allow-model``, bad file).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from hardware.errors import SpikeflightError
from tools.options import output_file
from tools.progress import console, episode_counter, err_console, progress_bar

app = typer.Typer(no_args_is_help=True, help="Energy and power of policy images.")
DEFAULT_MODELS = ["cmos45-horowitz2014", "loihi1-davies2018"]


def _open_sampler(sensor: str | None, allow_model: bool, period_s: float):
    """The sensor's sampler, or None (models only) where allowed."""
    if sensor is None:
        return None
    import time

    from hardware.power_sensors import Sampler, SensorError, open_sensor

    try:
        return Sampler(open_sensor(sensor), period_s=period_s, clock=time.perf_counter)
    except SensorError as exc:
        if not allow_model:
            hint = "" if "--allow-model" in str(exc) else \
                " (or pass --allow-model to profile with energy models only)"
            raise SpikeflightError(f"{exc}{hint}") from exc
        err_console.print(f"warning: {exc}; --allow-model: profiling with energy models only")
        return None


def _run(image: Path, pubkey: Path, task: str | None, episodes: int, seed: int,
         models: list[str], sensor: str | None, allow_model: bool, backend: str,
         period_s: float) -> dict:
    from hardware.energy_models import get_model
    from hardware.sim.registry import make_env
    from runtime.backends import BACKENDS
    from runtime.flight import FlightConfig
    from runtime.loader import load_flight_policy
    from tools.power_profile import profile

    if backend not in (*BACKENDS, "auto", "onnx"):
        raise SpikeflightError(f"--backend must be onnx, auto or one of {', '.join(BACKENDS)}, "
                               f"got {backend!r}")
    energy_models = [get_model(m) for m in models]
    policy = load_flight_policy(image, pubkey)
    env = make_env(task or policy.task)
    sampler = _open_sampler(sensor, allow_model, period_s)
    with progress_bar() as bar:
        job = bar.add_task(f"profile {image.name}", total=episodes, status="")
        on_episode = episode_counter(bar, job)

        record = profile(policy, env, energy_models, episodes, seed,
                         FlightConfig(backend=backend), sampler, on_episode)
    env.close()
    return record


@app.command("profile")
def profile_cmd(
    image: Path = typer.Argument(..., help="signed policy image"),
    pubkey: Path = typer.Option(..., "--pubkey", help="public key the image is signed by"),
    task: str | None = typer.Option(None, "--task", "-t", help="default: the image's task"),
    episodes: int = typer.Option(10, "--episodes", "-n", min=1),
    seed: int = typer.Option(10_000, "--seed"),
    model: list[str] = typer.Option(DEFAULT_MODELS, "--model", "-m",
                                    help="energy model (repeat): cmos45-horowitz2014, "
                                         "loihi1-davies2018, cpu-board:rpi4|jetson-nano-5w|"
                                         "jetson-nano-10w|FILE.yaml|FILE.toml"),
    sensor: str | None = typer.Option(None, "--sensor",
                                      help="rapl or rapl:ZONE | hwmon:NAME or hwmon:NAME/powerN | "
                                           "ina:DIR or ina:DIR:N | replay:TRACE.csv"),
    allow_model: bool = typer.Option(False, "--allow-model",
                                     help="go on with models only if the sensor fails"),
    sample_ms: float = typer.Option(10.0, "--sample-ms", min=0.1, max=60000.0,
                                    help="sensor sampling period (ms)"),
    backend: str = typer.Option("onnx", "--backend",
                                help="onnx (the image's ONNX graphs, fixed point first) | auto "
                                     "(Lava first for loihi2 images: slow simulation) | a name"),
    budget_w: float | None = typer.Option(None, "--budget-w", help="average power budget (W)"),
    budget_j: float | None = typer.Option(None, "--budget-j-per-episode",
                                          help="energy budget per episode (J)"),
    warn_at: float = typer.Option(0.9, "--warn-at", help="WARN above this fraction of a budget"),
    csv_out: Path | None = typer.Option(None, "--csv", callback=output_file,
                                        help="per-chunk table"),
    json_out: Path | None = typer.Option(None, "--json", callback=output_file,
                                         help="the whole record"),
    parquet_out: Path | None = typer.Option(None, "--parquet", callback=output_file,
                                            help="per-chunk table"),
    plot_out: Path | None = typer.Option(None, "--plot", callback=output_file,
                                         help="PNG: power over time, phases"),
) -> None:
    """Fly IMAGE and account its energy per chunk, episode and phase, per model and sensor;
    budget verdicts set the exit code (0 PASS, 3 WARN, 4 FAIL)."""
    from tools import power_report as rep

    if not 0 < warn_at <= 1:
        raise SpikeflightError(f"--warn-at must be in (0, 1], got {warn_at}")
    for b, name in ((budget_w, "--budget-w"), (budget_j, "--budget-j-per-episode")):
        if b is not None and b <= 0:
            raise SpikeflightError(f"{name} must be > 0, got {b}")
    record = _run(image, pubkey, task, episodes, seed, model, sensor, allow_model, backend,
                  sample_ms / 1e3)
    found = rep.verdicts(record, budget_w, budget_j, warn_at)
    record["verdicts"] = found
    record["budget"] = {"watts": budget_w, "joules_per_episode": budget_j, "warn_at": warn_at}
    rep.render(record, found)
    _export(record, csv_out, json_out, parquet_out, plot_out, budget_w)
    raise typer.Exit(rep.exit_code(found))


def _export(record: dict, csv_out: Path | None, json_out: Path | None,
            parquet_out: Path | None, plot_out: Path | None, budget_w: float | None) -> None:
    from tools import power_report as rep

    for path, write in ((json_out, rep.write_json), (csv_out, rep.write_csv),
                        (parquet_out, rep.write_parquet)):
        if path is not None:
            write(record, path)
            console.print(f"wrote {path}")
    if plot_out is not None:
        rep.plot(record, plot_out, budget_w)
        console.print(f"wrote {plot_out}")


@app.command("report")
def report_cmd(
    record: Path = typer.Argument(..., help="a record from power profile --json"),
    budget_w: float | None = typer.Option(None, "--budget-w"),
    budget_j: float | None = typer.Option(None, "--budget-j-per-episode"),
    warn_at: float | None = typer.Option(None, "--warn-at"),
    plot_out: Path | None = typer.Option(None, "--plot", callback=output_file),
    csv_out: Path | None = typer.Option(None, "--csv", callback=output_file),
    parquet_out: Path | None = typer.Option(None, "--parquet", callback=output_file),
) -> None:
    """Re-render a saved profile (budgets default to the ones it was profiled against)."""
    from tools import power_report as rep

    rec = rep.read_json(record)
    saved = rec.get("budget") or {}
    budget_w = budget_w if budget_w is not None else saved.get("watts")
    budget_j = budget_j if budget_j is not None else saved.get("joules_per_episode")
    found = rep.verdicts(rec, budget_w, budget_j, warn_at or saved.get("warn_at", 0.9))
    rep.render(rec, found)
    _export(rec, csv_out, None, parquet_out, plot_out, budget_w)
    raise typer.Exit(rep.exit_code(found))


@app.command("compare")
def compare_cmd(
    image_a: Path = typer.Argument(..., help="first image (e.g. SDP+SDLI)"),
    image_b: Path = typer.Argument(..., help="second image (e.g. its ANN twin)"),
    pubkey: Path = typer.Option(..., "--pubkey"),
    task: str | None = typer.Option(None, "--task", "-t"),
    episodes: int = typer.Option(10, "--episodes", "-n", min=1),
    seed: int = typer.Option(10_000, "--seed"),
    model: list[str] = typer.Option(DEFAULT_MODELS, "--model", "-m"),
    json_out: Path | None = typer.Option(None, "--json", callback=output_file),
) -> None:
    """Profile two images on the same seeds and print them side by side with A/B ratios."""
    recs = [_run(img, pubkey, task, episodes, seed, model, None, True, "onnx", 0.01)
            for img in (image_a, image_b)]
    table = Table("", image_a.name, image_b.name, "A / B", title="power compare")
    sa, sb = recs[0]["summary"], recs[1]["summary"]
    table.add_row("kind", recs[0]["kind"], recs[1]["kind"], "")
    table.add_row("success", f"{sa['successes']}/{sa['episodes']}",
                  f"{sb['successes']}/{sb['episodes']}", "")
    table.add_row("latency p50 ms", f"{sa['latency_ms_p50']:.2f}", f"{sb['latency_ms_p50']:.2f}",
                  f"{sa['latency_ms_p50'] / sb['latency_ms_p50']:.2f}")
    for m in model:
        ta, tb = recs[0]["totals"].get(m), recs[1]["totals"].get(m)
        for key, label in (("j_per_chunk", "J/chunk"), ("j_per_episode", "J/episode")):
            va = ta[key] if ta else None
            vb = tb[key] if tb else None
            ratio = f"{va / vb:.3f}" if va is not None and vb else "n/a"
            table.add_row(f"{m} {label}", "n/a" if va is None else f"{va:.3e}",
                          "n/a" if vb is None else f"{vb:.3e}", ratio)
    console.print(table)
    if json_out is not None:
        from tools import power_report as rep

        rep.write_json({"a": recs[0], "b": recs[1]}, json_out)
