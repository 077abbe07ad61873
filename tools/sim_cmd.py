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
    """Open (and free) a tiny offscreen GL context, or explain in one line why not."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import mujoco

        ctx = mujoco.GLContext(16, 16)
        ctx.make_current()
        ctx.free()
    except Exception as exc:  # mujoco raises assorted GL/import errors here
        backend = os.environ["MUJOCO_GL"]
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise SpikeflightError(
            f"offscreen rendering is not available here (MUJOCO_GL={backend}: {first}); "
            "install EGL (libegl1) or OSMesa (libosmesa6) and set MUJOCO_GL=egl or osmesa"
        ) from exc
