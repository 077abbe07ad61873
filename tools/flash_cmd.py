"""``spikeflight flash``: upload a signed image to a device agent, verify it, and boot it
on trial (``--test``) or boot and confirm it (``--confirm``); see ``tools/flash.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from hardware.errors import SpikeflightError
from tools import json_out


def flash_cmd(
    image: Path = typer.Argument(..., help="signed policy image (.sfimg)"),
    link: str = typer.Option(..., "--link", help="serial:/dev/PATH or udp:HOST:PORT"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan, change nothing"),
    test: bool = typer.Option(False, "--test", help="boot the image on trial after upload"),
    confirm: bool = typer.Option(False, "--confirm",
                                 help="boot the image, and confirm it once it runs"),
    timeout: float = typer.Option(5.0, "--timeout", min=0.1,
                                  help="seconds to wait for each answer"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Upload IMAGE to slot 1 of the device on LINK (resuming an interrupted upload),
    verify it, and with --test or --confirm boot it (the device self-tests it and reverts
    on failure). Exit 0 done; 1 the device reverted; 2 refused or bad input."""
    from tools.flash import flash, summary

    if test and confirm:
        raise SpikeflightError("--test and --confirm exclude each other")
    mode = "confirm" if confirm else "test" if test else "upload"
    res = flash(image, link, mode, dry_run, timeout)
    print(json_out.dumps(res, default=str) if as_json else summary(res))
    if res["result"] == "reverted":
        print(f"error: the device reverted: {res['boot'].get('reason')}", file=sys.stderr)
        raise typer.Exit(1)
