"""``spikeflight hil run``: hardware-in-the-loop test runs of a flashed device against a
cabin plant, one scenario after another, with measurements, limits and reports."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer
from rich.table import Table

from hardware.atomic import AtomicFile
from hardware.errors import SpikeflightError
from tools.json_out import dumps as strict_json
from tools.options import output_file
from tools.progress import console, episode_counter, progress_bar
from tools.run_cmd import ScreenOpt, WorldModelOpt

app = typer.Typer(no_args_is_help=True, help="Hardware-in-the-loop tests (device + plant).")


@app.command("run")
def run(
    image: Path = typer.Argument(..., help="signed policy image (.sfimg) to flash and fly"),
    storage: Path | None = typer.Option(None, "--storage",
                                        help="the device's storage (default: a fresh one); "
                                        "the image is flashed and confirmed there unless "
                                        "it already runs"),
    pubkey: Path = typer.Option(..., "--pubkey", help="the key the device trusts"),
    task: str | None = typer.Option(None, "--task", "-t", help="default: the image's task"),
    suite: str = typer.Option("nominal", "--suite",
                              help="comma-separated scenarios (see `hil scenarios`)"),
    episodes: int = typer.Option(5, "--episodes", "-n", min=1),
    seed: int = typer.Option(10_000, "--seed", help="first episode seed (held out)"),
    clock: str = typer.Option("virtual", "--clock", help="virtual (lock-step) | real (20 Hz)"),
    link: str = typer.Option("serial:pty", "--link", help="serial:pty | udp:127.0.0.1:0"),
    backend: str = typer.Option("auto", "--backend",
                                help="the device's backend (auto | onnx-fixed | ...)"),
    budget_w: float | None = typer.Option(None, "--budget-w",
                                          help="power budget (W); brownout's default: 1.2 x "
                                          "the dearest operating point's power"),
    min_success: float = typer.Option(0.8, "--min-success", min=0.0, max=1.0,
                                      help="success-rate pass limit (marginal: +0.1)"),
    junit_out: Path | None = typer.Option(None, "--junit", help="JUnit XML report",
                                          callback=output_file),
    json_out: Path | None = typer.Option(None, "--json", help="JSON report",
                                         callback=output_file),
    plot_out: Path | None = typer.Option(None, "--plot", callback=output_file,
                                         help="PNG: latency and events, "
                                         "power against budget, per scenario"),
    power_trace: Path | None = typer.Option(None, "--power-trace",
                                            help="board trace (CSV t_s, power_w | energy_j) "
                                            "the device's governor reads instead of its "
                                            "energy model"),
    world_model: WorldModelOpt = True,
    candidates: ScreenOpt = 1,
) -> None:
    """Fly the device's confirmed image in its own process over a framed link (COBS, CRC-32)
    against the task's plant under each scenario's faults; print a summary table; exit 1
    if any measurement FAILs."""
    from hardware.hil.plant import CLOCKS
    from hardware.hil.scenarios import parse_suite
    from runtime.image import ImageError, load_image, read_image
    from runtime.power_reading import TraceReading
    from tools import hil, hil_measure

    scenarios = parse_suite(suite)
    if clock not in CLOCKS:
        raise SpikeflightError(f"--clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
    if power_trace is not None:
        TraceReading(power_trace)  # a bad trace fails here, before anything is flashed
    if candidates < 1:
        raise SpikeflightError(f"--screen must be >= 1, got {candidates}")
    try:
        header = read_image(load_image(image))
    except ImageError as exc:
        raise SpikeflightError(f"{image}: {exc}") from None
    target, task = header.header.target, task or header.manifest["task"]
    with tempfile.TemporaryDirectory(prefix="spikeflight-hil-") as tmp:
        storage = storage or Path(tmp) / "device"
        res = hil.provision(image, pubkey, storage, target, backend)
        console.print(f"flashed {image.name} onto the device: {res['result']}")
        records, results = [], []
        for sc in scenarios:
            budget = budget_w
            if budget is None and sc.brownout_tick >= 0:
                budget = hil.default_budget_w(header.manifest)
            with progress_bar() as bar:
                job = bar.add_task(f"hil {sc.name} on {task}", total=episodes, status="")
                result = hil.run_scenario(sc, storage, pubkey, target, task,
                                          range(seed, seed + episodes), clock, link, backend,
                                          budget, on_episode=episode_counter(bar, job),
                                          power_trace=power_trace,
                                          world_model=world_model, candidates=candidates)
            ms = hil_measure.measure(sc, result, min_success, clock)
            records.append(hil_measure.record(sc, result, ms))
            results.append((sc.name, result))
    overall = hil_measure.worst([r["verdict"] for r in records])
    report = {"verdict": overall, "image": str(image), "task": task, "target": target,
              "clock": clock, "link": link, "episodes": episodes, "seed": seed,
              "scenarios": records}
    for path, text in ((json_out, lambda: strict_json(report, indent=1, default=float)),
                       (junit_out, lambda: hil_measure.junit(records))):
        if path is not None:
            with AtomicFile(path) as tmp:
                tmp.write_text(text())
    if plot_out is not None:
        from tools.hil_plot import plot

        plot(results, plot_out, f"HIL: {image.name} on {task}, {clock} clock, {link}")
    _print(records, overall)
    if overall == "FAIL":
        raise typer.Exit(1)


@app.command("scenarios")
def scenarios() -> None:
    """The fault scenarios and their parameters."""
    from hardware.hil.scenarios import SCENARIOS

    for s in SCENARIOS.values():
        params = ", ".join(f"{k}={v}" for k, v in s.params().items()) or "no faults"
        console.print(f"{s.name}: {params}", highlight=False)


def _print(records: list[dict], overall: str) -> None:
    names = [m["name"] for m in records[0]["measurements"]]
    table = Table(title="HIL measurements")
    table.add_column("measurement", overflow="fold")
    for r in records:
        table.add_column(r["scenario"], overflow="fold")
    for i, name in enumerate(names):
        cells = []
        for r in records:
            m = r["measurements"][i]
            v = m["value"]
            text = f"{v:.3g}" if isinstance(v, float) else str(v)
            cells.append(text if m["verdict"] == "PASS" else f"{text} {m['verdict']}")
        table.add_row(name, *cells)
    table.add_row("verdict", *[r["verdict"] for r in records])
    console.print(table)
    console.print(f"HIL run: {overall}")
