"""The ``spikeflight`` command line: one typer app, sub-apps per job.

Exit codes: 0 success; 1 a check failed (e.g. a benchmark target missed, where stated);
130 interrupted (SIGINT, Ctrl-C), 143 terminated (SIGTERM); 2 bad input (a one-line
``error: ...`` on stderr, no traceback: a bad option value or an unknown option too,
which the app reports itself instead of printing click's usage box). ``module:callable``
references resolve against the current directory too, as uvicorn's do.
"""

from __future__ import annotations

import os
import sys

import typer
from typer.exceptions import TyperException

from hardware.errors import SpikeflightError
from tools import (
    bench_cmd,
    compile_cmd,
    data_cmd,
    demo_cmd,
    device_cmd,
    eval_cmd,
    flash_cmd,
    hil_cmd,
    image_cmd,
    keys_cmd,
    power_cmd,
    progress,
    run_cmd,
    sim_cmd,
    terminate,
    train_cmd,
    world_model_cmd,
)
from tools.options import finite_floats

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="spikeflight: spiking diffusion policies for spacecraft robots.")
app.add_typer(data_cmd.app, name="data")
app.add_typer(sim_cmd.app, name="sim")
app.add_typer(bench_cmd.app, name="bench")
app.add_typer(train_cmd.app, name="train")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(image_cmd.app, name="image")
app.add_typer(power_cmd.app, name="power")
app.add_typer(device_cmd.app, name="device")
app.add_typer(hil_cmd.app, name="hil")
app.add_typer(world_model_cmd.app, name="world-model")
app.command("compile")(compile_cmd.compile_cmd)
app.command("eval")(eval_cmd.evaluate_cmd)
app.command("run")(run_cmd.run_cmd)
app.command("demo")(demo_cmd.demo)
app.command("flash")(flash_cmd.flash_cmd)
finite_floats(app)  # every float option refuses nan and inf, keeping its range


@app.callback()
def options(quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars or "
                                       "progress lines (results and errors still print)")
            ) -> None:
    """spikeflight: spiking diffusion policies for spacecraft robots."""
    progress.QUIET = quiet


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    terminate.install()
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        code = app(args=argv, standalone_mode=False)
    except SpikeflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except TyperException as exc:  # usage errors: a bad option value, an unknown option
        ctx = getattr(exc, "ctx", None)
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        if exc.format_message():  # empty after the help a bare group prints
            print(f"error: {exc.format_message()}{hint}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("Aborted!", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
