"""``spikeflight compile``: a trained checkpoint -> a signed policy image."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from hardware.errors import SpikeflightError
from tools.options import output_file
from tools.progress import console, err_console


def compile_cmd(
    checkpoint: Path = typer.Argument(..., help="training run directory"),
    target: str = typer.Option("loihi2", "--target", help="loihi2 | cpu | cpu-fixed"),
    key: Path = typer.Option(..., "--key", "-k",
                             help="Ed25519 private key (from `spikeflight keys generate`)"),
    out: Path = typer.Option(..., "--out", "-o", help="image file to write (.sfimg)",
                             callback=output_file),
    version: str = typer.Option("0.1.0", "--version", help="image version (semver)"),
    security_counter: int = typer.Option(0, "--security-counter", min=0,
                                         help="anti-rollback counter stored in the image"),
    groups: int = typer.Option(8, "--groups", min=1,
                               help="LIF processes per population 2..L (own vth each)"),
    golden: int = typer.Option(128, "--golden", min=100,
                               help="golden evaluations for conformance and self-test"),
    points: str = typer.Option("ddpm/2,ddpm,10,5,3", "--operating-points",
                               help="for the power governor: DDIM step counts (ddpm = all K "
                                    "steps), each optionally /R actions executed per chunk"),
    ground_episodes: int = typer.Option(20, "--ground-episodes", min=1,
                                        help="closed-loop episodes per operating point"),
    world_model: Path | None = typer.Option(None, "--world-model",
                                            help="distilled student world model run (`train "
                                                 "distill`) to pack beside the policy"),
    screen: int = typer.Option(1, "--screen", min=1, max=64,
                               help="with --world-model: add a twin of every operating point "
                                    "that screens N candidate chunks per plan (success of "
                                    "both measured by flying the image)"),
    report_json: Path | None = typer.Option(None, "--report-json", callback=output_file,
                                            help="also write the compile report as JSON"),
    nir: Path | None = typer.Option(None, "--nir", callback=output_file,
                                    help="also write the policy's NIR graph (the image does "
                                         "not carry it)"),
) -> None:
    """Compile, check every hardware limit and conformance, sign and write the image.

    A failed compile writes nothing; every limit violation is listed in one message.
    """
    from compiler.build import CompileOptions, compile_policy
    from runtime.image import TARGETS, write_image
    from runtime.keys import load_private_key

    if target not in TARGETS:
        raise SpikeflightError(f"--target must be one of {', '.join(TARGETS)}, got {target!r}")
    if not (checkpoint / "config.json").is_file():
        raise SpikeflightError(f"{checkpoint}: not a training run directory (no config.json)")
    steps = parse_points(points)
    private = load_private_key(key)
    opts = CompileOptions(target=target, groups=groups, golden=golden, version=version,
                          security_counter=security_counter, operating_points=steps,
                          ground_episodes=ground_episodes, world_model=world_model,
                          screen=screen)
    t0 = time.perf_counter()
    with err_console.status("compiling") as status:  # stages on stdout: stderr keeps
        def on_stage(msg: str) -> None:                # one line for an error
            console.log(msg)
            status.update(msg)

        result = compile_policy(checkpoint, opts, private, on_stage=on_stage)
    write_image(out, result.image)
    if nir is not None:
        nir.write_bytes(result.nir)
    seconds = time.perf_counter() - t0
    _print_report(result.manifest, result.report)
    table = Table("stage", "wall s", title="compile time per stage")
    for name, sec in result.stage_seconds:
        table.add_row(name, f"{sec:.1f}")
    console.print(table)
    if report_json is not None:
        from hardware.atomic import AtomicFile
        from tools.json_out import dumps

        with AtomicFile(report_json) as tmp:
            tmp.write_text(dumps({"manifest": result.manifest, "compile_seconds": seconds,
                                  "stage_seconds": dict(result.stage_seconds)}, indent=1))
    console.print(f"wrote {out} ({len(result.image):,} bytes, target {target}) in {seconds:.1f} s")


def parse_points(text: str) -> tuple[tuple[int | None, int | None], ...]:
    """``"ddpm/2,ddpm,10,5"`` -> ((None, 2), (None, None), (10, None), (5, None)): DDIM step
    counts (``ddpm`` = all K steps), optionally ``/R`` actions executed per chunk."""
    out: list[tuple[int | None, int | None]] = []
    for item in text.split(","):
        steps, _, replan = item.strip().lower().partition("/")
        if not (steps == "ddpm" or steps.isdigit() and int(steps) >= 1) or \
                (replan and not (replan.isdigit() and int(replan) >= 1)):
            raise SpikeflightError(f"--operating-points: {item.strip()!r} is not 'ddpm' or a "
                                   "positive step count, optionally followed by /actions")
        out.append((None if steps == "ddpm" else int(steps), int(replan) if replan else None))
    return tuple(out)


def _print_report(manifest: dict, rows: list[dict]) -> None:
    if rows:
        table = Table("layer", "neurons", "synapses in", "weight exp", "vth", "cores",
                      "firing rate", "synops/chunk", title="compile report")
        for r in rows:
            exps = r["weight_exp"]
            exp = "-" if not exps else f"{exps[0]}..{exps[-1]}" if len(exps) > 1 else str(exps[0])
            vth = r["vth"]
            table.add_row(r["layer"], f"{r['neurons']:,}", f"{r['synapses_in']:,}", exp,
                          f"{vth[0]}..{vth[-1]}" if len(vth) > 1 else str(vth[0]),
                          str(r["cores"]), f"{r['firing_rate']:.3f}",
                          f"{r['synops_per_chunk']:,.0f}")
        console.print(table)
    checks = manifest["conformance"]
    lines = []
    f = checks["onnx_float_vs_torch"]
    lines.append(f"ONNX float vs torch: max action error {f['max_abs_error']:.2g} over "
                 f"{f['samples']} chunks (tolerance {f['tolerance']:g})")
    if "onnx_fixed_vs_lava" in checks:
        c = checks["onnx_fixed_vs_lava"]
        lines.append(f"ONNX fixed point vs Lava fixed_pt: {c['mismatches']} mismatching of "
                     f"{c['values']:,} spike values ({c['vectors']} golden evaluations)")
    if "lava_float_vs_onnx_float" in checks:
        c = checks["lava_float_vs_onnx_float"]
        lines.append(f"Lava floating_pt vs ONNX float: max eps error {c['max_abs_eps_error']:.2g}"
                     f" ({c['vectors']} evaluations, tolerance {c['tolerance']:g})")
    if "quantized_vs_float" in checks:
        c = checks["quantized_vs_float"]
        lines.append(f"fixed point vs float: action RMSE {c['action_rmse']:.4f} (normalised "
                     f"units, {c['states']} states)")
    for p in manifest.get("operating_points", []):
        n = p.get("candidates", 1)
        each = f" x {n} candidates" if n > 1 else ""
        lines.append(f"operating point {p['name']}: {p['energy_j'] * 1e6:.3f} uJ/chunk{each} "
                     f"({p['energy_source']}), ground success {p['success_rate']:.0%} over "
                     f"{p['ground_episodes']} episodes")
    if "mapping" in manifest:
        lines.append(f"{manifest['mapping']['cores']} cores; {manifest['mapping']['hardware']}")
    for line in lines:
        console.print(line)
