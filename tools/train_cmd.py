"""``spikeflight train bc|dagger|rl|world-model``: behaviour cloning, DAgger, L-SDPPO
fine-tuning, and the teacher world model (``tools.world_model_cmd``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from hardware.errors import SpikeflightError
from tools import world_model_cmd
from tools.options import ObsKeys, output_dir
from tools.progress import console, progress_bar

app = typer.Typer(no_args_is_help=True, help="Host-side training.")
app.command("world-model")(world_model_cmd.train)
app.command("distill")(world_model_cmd.distill)

# Options shared by ``train bc`` and ``train dagger`` (one definition, one help text).
Policy = Annotated[str, typer.Option("--policy", "-p", help="sdp | sdp-sdli | ann")]
Out = Annotated[Path, typer.Option("--out", "-o", help="run directory (resumes if it exists)",
                                   callback=output_dir)]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1)]
Lr = Annotated[float, typer.Option("--lr")]
Hidden = Annotated[str, typer.Option("--hidden",
                                     help="hidden widths; the paper's size is 2048,2048")]
MicroSteps = Annotated[int, typer.Option("--micro-steps", "-T", min=2)]
RateReg = Annotated[float, typer.Option("--rate-reg", help="firing-rate penalty weight")]
SdliInvert = Annotated[bool, typer.Option("--sdli-invert", help="front-load the state")]
Seed = Annotated[int, typer.Option("--seed")]
Threads = Annotated[int, typer.Option("--threads", min=1)]
CheckpointEvery = Annotated[int, typer.Option("--checkpoint-every", min=1)]
LrSchedule = Annotated[str, typer.Option("--lr-schedule",
                                         help="constant | cosine (500 warm-up iterations)")]
PhaseBalance = Annotated[float, typer.Option(
    "--phase-balance", min=0.0, max=1.0,
    help="sample windows by expert phase: 0 uniform, 1 every phase equally often")]
Prediction = Annotated[str, typer.Option(
    "--prediction", help="what the denoiser predicts: epsilon (the noise), sample (the clean "
    "chunk x0) or v (the velocity sqrt(ab) eps - sqrt(1 - ab) x0)")]
StateReadout = Annotated[bool, typer.Option(
    "--state-readout", help="add a graded map of the state current to the output, once per "
    "chunk (smooth in the state; for --prediction sample)")]
ActionFrameOpt = Annotated[str, typer.Option(
    "--action-frame", help="frame of the policy's action chunks: world, or gripper (the "
    "gripper's frame at the chunk's start; cabin tasks)")]
NProc = Annotated[int, typer.Option("--nproc", min=1,
                                    help="data-parallel ranks on this machine (runs torchrun)")]


def parse_widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError as exc:
        raise SpikeflightError(f"--hidden must be comma-separated integers, got {text!r}") from exc
    if not widths or min(widths) < 1:
        raise SpikeflightError(f"--hidden widths must be positive, got {text!r}")
    return widths


def _configs(task: str, policy: str, hidden: str, micro_steps: int, sdli_invert: bool,
             iterations: int, prediction: str = "epsilon", state_readout: bool = False,
             action_frame: str = "world", **train: Any) -> tuple[Any, Any]:
    """(PolicyConfig, TrainConfig) from the command-line options; checks them first."""
    from hardware.sim.action_frame import ActionFrame
    from hardware.sim.layout import obs_fields
    from hardware.sim.registry import make_env
    from policies.bc import LR_SCHEDULES, TrainConfig
    from policies.config import KINDS, PolicyConfig
    from policies.diffusion import PREDICTIONS

    if policy not in KINDS:
        raise SpikeflightError(f"--policy must be one of {', '.join(KINDS)}, got {policy!r}")
    if prediction not in PREDICTIONS:
        raise SpikeflightError(f"--prediction must be one of {', '.join(PREDICTIONS)}, "
                               f"got {prediction!r}")
    if train.get("lr_schedule", "constant") not in LR_SCHEDULES:
        raise SpikeflightError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, "
                               f"got {train['lr_schedule']!r}")
    env = make_env(task)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    try:
        frame = ActionFrame.for_layout(action_frame, obs_fields(env))
    finally:
        env.close()
    cfg = PolicyConfig(kind=policy, obs_dim=obs_dim, act_dim=act_dim, hidden=parse_widths(hidden),
                       micro_steps=micro_steps, sdli_invert=sdli_invert, prediction=prediction,
                       state_readout=state_readout, action_frame=frame.name,
                       frame_rot6=frame.rot6,
                       sdli_ramp_iters=min(5000, max(iterations // 2, 1)))
    return cfg, TrainConfig(iterations=iterations, **train)


@app.command("bc")
def bc(
    out: Out,
    task: str = typer.Option("hatch", "--task", "-t", help="task name or module:callable"),
    demos: Path = typer.Option(..., "--demos", "-d", help="demonstration .hdf5"),
    policy: Policy = "sdp-sdli",
    iterations: int = typer.Option(20000, "--iterations", "-n", min=1),
    batch_size: BatchSize = 256,
    lr: Lr = 3e-4,
    hidden: Hidden = "256,256",
    micro_steps: MicroSteps = 4,
    rate_reg: RateReg = 0.3,
    sdli_invert: SdliInvert = False,
    lr_schedule: LrSchedule = "constant",
    phase_balance: PhaseBalance = 0.0,
    prediction: Prediction = "epsilon",
    state_readout: StateReadout = False,
    action_frame: ActionFrameOpt = "world",
    seed: Seed = 0,
    threads: Threads = 2,
    checkpoint_every: CheckpointEvery = 1000,
    nproc: NProc = 1,
    obs_keys: ObsKeys = None,
) -> None:
    """Train a spiking diffusion policy (or its ANN twin); checkpoints go to --out and an
    interrupted run continues from its last checkpoint when started again. --nproc N
    trains data-parallel on N ranks (torchrun, gloo)."""
    from hardware.sim.obs_order import parse_obs_keys
    from policies.bc import resumable_config, train_bc
    from policies.data import load_bc_data
    from policies.dist import Comm

    keys = parse_obs_keys(obs_keys)
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        raise typer.Exit(_torchrun(nproc))

    cfg, tcfg = _configs(task, policy, hidden, micro_steps, sdli_invert, iterations,
                         prediction, state_readout, action_frame, batch_size=batch_size,
                         lr=lr, seed=seed, threads=threads, checkpoint_every=checkpoint_every,
                         rate_reg=rate_reg, lr_schedule=lr_schedule,
                         phase_balance=phase_balance)
    data = load_bc_data(demos, cfg.chunk, cfg.obs_dim, cfg.act_dim, task, keys)
    cfg = resumable_config(out, task, policy) or cfg  # checks before anything is drawn
    with Comm.joined() as comm:
        if comm.main:  # rank 0 reports; the others only compute
            _bc_reporting(task, policy, data, cfg, tcfg, out, comm)
        else:
            train_bc(task, data, cfg, tcfg, out, comm=comm)


def _bc_reporting(task: str, policy: str, data: Any, cfg: Any, tcfg: Any, out: Path,
                  comm: Any) -> None:
    from policies.bc import train_bc

    iterations = tcfg.iterations
    console.print(f"{policy} on {task}: {len(data)} samples from {data.episodes} "
                  f"episodes, hidden {cfg.hidden}, T={cfg.micro_steps}, {comm.world} rank(s)"
                  f" -> {out}")
    with progress_bar() as bar:
        job = bar.add_task(f"train {policy}", total=iterations, status="")

        def on_step(i: int, loss: float) -> None:
            if i % 50 == 0 or i == iterations:
                bar.update(job, completed=i, status=f"loss {loss:.4f}")

        res = train_bc(task, data, cfg, tcfg, out, on_step=on_step, comm=comm)
    if res.resumed_from:
        console.print(f"resumed from iteration {res.resumed_from}")
    tail = res.losses[-100:]
    console.print(f"done: {res.iteration} iterations, mean loss of the last {len(tail)} "
                  f"{sum(tail) / max(len(tail), 1):.4f}; checkpoint {out}")


@app.command("dagger")
def dagger(
    out: Out,
    task: str = typer.Option("hatch", "--task", "-t", help="cabin task (needs its expert)"),
    demos: Path = typer.Option(..., "--demos", "-d", help="expert demonstration .hdf5"),
    policy: Policy = "sdp-sdli",
    rounds: int = typer.Option(3, "--rounds", min=1, help="DAgger rounds after BC"),
    episodes: int = typer.Option(100, "--episodes", min=1, help="learner rollouts per round"),
    beta: float = typer.Option(0.5, "--beta", min=0.0, max=1.0,
                               help="expert share of the chunks in round 1"),
    decay: float = typer.Option(0.5, "--decay", min=0.0, max=1.0,
                                help="factor on the expert share per round"),
    iterations: int = typer.Option(20000, "--iterations", "-n", min=1,
                                   help="BC iterations of round 0"),
    round_iterations: int = typer.Option(6000, "--round-iterations", min=1,
                                         help="iterations per DAgger round"),
    batch_size: BatchSize = 256,
    lr: Lr = 3e-4,
    hidden: Hidden = "256,256",
    micro_steps: MicroSteps = 4,
    rate_reg: RateReg = 0.3,
    sdli_invert: SdliInvert = False,
    prediction: Prediction = "epsilon",
    state_readout: StateReadout = False,
    action_frame: ActionFrameOpt = "world",
    seed: Seed = 0,
    threads: Threads = 2,
    checkpoint_every: CheckpointEvery = 1000,
    obs_keys: ObsKeys = None,
) -> None:
    """Behaviour cloning, then DAgger rounds: roll out the learner (mixed with the expert),
    label every visited state with the scripted expert, aggregate, retrain. The run
    directory ends up an ordinary checkpoint; started again, it resumes."""
    from hardware.sim.obs_order import parse_obs_keys
    from hardware.sim.registry import TASKS
    from policies.dagger import DaggerConfig, run_dagger

    keys = parse_obs_keys(obs_keys)
    if task not in TASKS:
        raise SpikeflightError(f"DAgger needs a scripted expert: --task must be one of "
                               f"{', '.join(TASKS)}, got {task!r}")
    cfg, tcfg = _configs(task, policy, hidden, micro_steps, sdli_invert, iterations,
                         prediction, state_readout, action_frame, batch_size=batch_size,
                         lr=lr, seed=seed, threads=threads, checkpoint_every=checkpoint_every,
                         rate_reg=rate_reg)
    dcfg = DaggerConfig(rounds=rounds, episodes=episodes, beta0=beta, decay=decay,
                        round_iterations=round_iterations)
    console.print(f"DAgger {policy} on {task}: BC for {iterations} iterations, then "
                  f"{rounds} rounds of {episodes} rollouts + {round_iterations} iterations "
                  f"-> {out}")
    with progress_bar() as bar:
        jobs: dict[str, Any] = {}

        def job(kind: str, r: int, total: int) -> Any:
            key = f"{kind}{r}"
            if key not in jobs:
                jobs[key] = bar.add_task(f"round {r} {kind}", total=total, status="")
            return jobs[key]

        def on_step(r: int, i: int, loss: float) -> None:
            total = iterations if r == 0 else round_iterations
            if i % 50 == 0 or i == total:
                bar.update(job("train", r, total), completed=i, status=f"loss {loss:.4f}")

        wins: dict[int, int] = {}

        def on_episode(r: int, ep: Any) -> None:
            wins[r] = wins.get(r, 0) + bool(ep.success)
            bar.update(job("rollouts", r, episodes), advance=1, status=f"success {wins[r]}")

        def on_round(rec: Any) -> None:
            what = ("behaviour cloning on the demonstrations" if rec.round == 0 else
                    f"rollouts (beta {rec.beta:.3f}) {rec.successes}/{rec.episodes} successful")
            console.print(f"round {rec.round}: {what}; trained on {rec.samples} samples")

        res = run_dagger(task, demos, out, cfg, tcfg, dcfg, on_step=on_step,
                         on_episode=on_episode, on_round=on_round, obs_keys=keys)
    console.print(f"done: {len(res.rounds)} rounds; checkpoint {out}")


@app.command("rl")
def rl(
    out: Out,
    init: Path = typer.Option(..., "--init", help="behaviour-cloned checkpoint to fine-tune"),
    task: str | None = typer.Option(None, "--task", "-t",
                                    help="task name or module:callable (default: the "
                                    "checkpoint's)"),
    iterations: int = typer.Option(50, "--iterations", "-n", min=1),
    envs: int = typer.Option(8, "--envs", min=1, help="episodes per iteration, in parallel"),
    sync: bool = typer.Option(False, "--sync", help="step the envs in this process "
                              "(default: one process each)"),
    ft_steps: int = typer.Option(10, "--ft-steps", min=1,
                                 help="denoising steps fine-tuned (the last ones)"),
    epochs: int = typer.Option(5, "--epochs", min=1),
    minibatch: int = typer.Option(256, "--minibatch", min=1,
                                  help="chunk decisions per gradient step (all ranks)"),
    actor_lr: float = typer.Option(1e-4, "--actor-lr"),
    tune: str = typer.Option("all", "--tune", help="all | readout (only the graded output "
                             "maps: the spikes stay the imitation's)"),
    critic_lr: float = typer.Option(1e-3, "--critic-lr"),
    critic_warmup: int = typer.Option(2, "--critic-warmup", min=0,
                                      help="iterations that train the critic only"),
    eval_every: int = typer.Option(10, "--eval-every", min=0,
                                   help="iterations between held-out evaluations (0: never)"),
    eval_episodes: int = typer.Option(20, "--eval-episodes", min=1),
    energy: float = typer.Option(0.0, "--energy", min=0.0,
                                 help="weight of the firing-rate penalty (lower energy)"),
    std_floor: float = typer.Option(0.1, "--std-floor", min=1e-3,
                                    help="std floor of the fine-tuned steps' sampling "
                                    "(exploration)"),
    logp_std_floor: float = typer.Option(0.1, "--logp-std-floor", min=1e-3,
                                         help="std floor of their log-probabilities"),
    reward: str = typer.Option("success", "--reward",
                               help="success (1 on the chunk that succeeds) | shaped"),
    nproc: NProc = 1,
    seed: Seed = 0,
    threads: Threads = 1,
) -> None:
    """L-SDPPO: fine-tune a diffusion policy's last denoising steps with DPPO on
    vectorized rollouts. Every iteration is checkpointed; started again, the run resumes
    exactly. The run directory is an ordinary checkpoint (eval, compile take it)."""
    from dataclasses import replace

    from policies.dist import Comm
    from policies.dppo import DppoConfig
    from policies.rl import RlConfig, train_rl

    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        raise typer.Exit(_torchrun(nproc))
    if reward not in ("success", "shaped"):
        raise SpikeflightError(f"--reward must be success or shaped, got {reward!r}")
    task, steps = rl_target(init, task, tune, ft_steps)
    cfg = RlConfig(iterations=iterations, envs=envs, asynchronous=not sync, epochs=epochs,
                   minibatch=minibatch, actor_lr=actor_lr, critic_lr=critic_lr,
                   critic_warmup=critic_warmup,
                   eval_every=eval_every, eval_episodes=eval_episodes, seed=seed,
                   threads=threads, init=str(init), reward=reward, tune=tune,
                   dppo=replace(DppoConfig(), ft_steps=ft_steps, energy_coef=energy,
                                sigma_min=std_floor, sigma_lp_min=logp_std_floor))
    with Comm.joined() as comm:
        if envs < comm.world:
            raise SpikeflightError(f"--envs {envs} cannot be shared by {comm.world} ranks")
        if comm.main:  # rank 0 reports; the others only compute
            _rl_reporting(task, cfg, out, steps, comm)
        else:
            train_rl(task, cfg, out, comm=comm)


def rl_target(init: Path, task: str | None, tune: str, ft_steps: int) -> tuple[str, int]:
    """The task RL runs on (``task``, else the checkpoint's) and the policy's denoising
    steps, after checking ``--tune`` and ``--ft-steps`` against the checkpoint."""
    from policies.checkpoint import read_config
    from policies.rl import TUNE

    if tune not in TUNE:
        raise SpikeflightError(f"--tune must be one of {', '.join(TUNE)}, got {tune!r}")
    _, saved = read_config(init)
    steps = int(saved["policy"].get("diffusion_steps", 20))
    if ft_steps > steps:
        raise SpikeflightError(f"--ft-steps {ft_steps}: the policy has {steps} denoising steps")
    return task or saved["task"], steps


def _rl_reporting(task: str, cfg: Any, out: Path, steps: int, comm: Any) -> None:
    from policies.rl import train_rl

    console.print(f"L-SDPPO on {task} from {cfg.init}: {cfg.envs} envs per iteration on "
                  f"{comm.world} rank(s), last {cfg.dppo.ft_steps} of {steps} denoising steps"
                  f" -> {out}")
    with progress_bar() as bar:
        job = bar.add_task("fine-tune", total=cfg.iterations, status="")

        def on_iteration(st: Any) -> None:
            u = st.update
            rates = "/".join(f"{r:.3f}" for r in st.firing_rates)
            line = (f"it {st.iteration}: success {st.successes}/{st.episodes}, return "
                    f"{st.mean_return:.2f}, KL {u['approx_kl']:.2e}, clip {u['clipfrac']:.2f}, "
                    f"rates {rates or '-'}")
            if st.eval_success is not None:
                line += f", held-out success {st.eval_success:.0%}"
            bar.update(job, completed=st.iteration, status=f"success {st.successes}/{st.episodes}")
            bar.console.print(line, highlight=False)

        history = train_rl(task, cfg, out, on_iteration=on_iteration, comm=comm)
    console.print(f"done: {len(history)} iterations, "
                  f"{sum(h['env_steps'] for h in history):,} env steps; checkpoint {out}")


def _torchrun(nproc: int) -> int:
    """Run this same command under torchrun with ``nproc`` ranks on this machine (across
    machines, run ``torchrun --nnodes M --nproc-per-node N --rdzv-endpoint HOST:PORT -m
    tools.cli train bc|rl ...`` on each); its exit code."""
    import subprocess

    args, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            args.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", "tools.cli", *args]
    return subprocess.run(cmd).returncode
