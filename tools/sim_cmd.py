"""``spikeflight sim``: list the cabin tasks, render an episode to a GIF or PNG frames."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.table import Table

from hardware.errors import SpikeflightError
from tools.progress import console

app = typer.Typer(no_args_is_help=True, help="The zero-g cabin simulator.")


@app.command("tasks")
def tasks() -> None:
    """The five cabin tasks: observation size, horizon and success criterion."""
    from hardware.sim.registry import TASKS, make_env

    table = Table("task", "obs", "max steps", "success criterion")
    for name in TASKS:
        env = make_env(name)
        table.add_row(name, str(env.observation_space.shape[0]), str(env.unwrapped.max_steps),
                      env.unwrapped.SUCCESS_CRITERION)
        env.close()
    console.print(table)


@app.command("render")
def render(
    task: str = typer.Option("hatch", "--task", "-t", help="cabin task name or module:callable"),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(..., "--out", "-o",
                             help="a .gif file, or a directory for PNG frames"),
    every: int = typer.Option(2, "--every", min=1, help="keep one frame in N control steps"),
    policy: str = typer.Option("expert", "--policy", help="expert | zero"),
) -> None:
    """Render one episode (the scripted expert by default) from the overview camera."""
    _check_offscreen_gl()
    import numpy as np

    from hardware.sim.registry import make_env, make_expert
    from tools.frames import write_frames

    if policy not in ("expert", "zero"):
        raise SpikeflightError(f"--policy must be 'expert' or 'zero', got {policy!r}")
    env = make_env(task, render_mode="rgb_array")
    try:
        expert = make_expert(task, env) if policy == "expert" else None
        obs, info = env.reset(seed=seed)
        if expert:
            expert.reset()
        frames = [env.render()]
        done, step = False, 0
        while not done:
            action = expert.act(obs) if expert else np.zeros(env.action_space.shape)
            obs, _, term, trunc, info = env.step(action)
            step += 1
            done = term or trunc
            if step % every == 0 or done:
                frames.append(env.render())
    finally:
        env.close()
    path = write_frames(frames, out, fps=env.metadata.get("render_fps", 20) / every)
    console.print(f"wrote {path}: {len(frames)} frames, {step} steps, "
                  f"success {bool(info.get('success'))}")


def _check_offscreen_gl() -> None:
    """Render one frame of a trivial scene offscreen, or explain in one line why not."""
    import gc
    import sys
    import warnings

    os.environ.setdefault("MUJOCO_GL", "egl")
    hook = sys.unraisablehook  # a half-built Renderer complains from __del__: keep it quiet
    sys.unraisablehook = lambda _: None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            import mujoco

            model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='.1'/>"
                                                   "</worldbody></mujoco>")
            renderer = mujoco.Renderer(model, 16, 16)
            renderer.update_scene(mujoco.MjData(model))
            renderer.render()
            renderer.close()
            return
        except Exception as exc:  # mujoco raises assorted GL/import errors here
            text = str(caught[0].message) if caught else str(exc)
            reason = (text.strip().splitlines() or [type(exc).__name__])[0]
        finally:
            gc.collect()
            sys.unraisablehook = hook
    raise SpikeflightError(
        f"offscreen rendering is not available here (MUJOCO_GL={os.environ['MUJOCO_GL']}: "
        f"{reason}); install EGL (libegl1) or OSMesa (libosmesa6) and set MUJOCO_GL=egl "
        "or osmesa"
    )
