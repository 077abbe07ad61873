"""The cabin's shared physics and the task registry, across all five tasks."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from hardware.sim import rotations as rot
from hardware.sim.cabin import TRACKING_RATIO, CabinEnv
from hardware.sim.registry import TASKS, TaskError, make_env, make_expert
from hardware.sim.scene import TaskScene
from tests.sim.rollout import rollout


class _Probe(CabinEnv):
    """A lone free-floating box far from the gripper: nothing but inertia acts on it."""

    NAME = "probe"
    OBS_FIELDS = (("box_pos", 3, "box position, m"),)

    def scene(self) -> TaskScene:
        return TaskScene(bodies="""
    <body name="box" pos="0.4 0 0.3"><freejoint name="box"/>
      <geom type="box" size="0.05 0.03 0.02" mass="0.8"/></body>""",
                         gripper_pos=(-0.5, 0.0, 0.6))

    def _randomize(self, rng: np.random.Generator) -> None:
        self.set_free_body("box", np.array([0.4, 0.0, 0.3]), np.array([1.0, 0, 0, 0]))

    def _features(self) -> np.ndarray:
        return self.body_pos("box")

    def _evaluate(self) -> tuple[float, bool]:
        return 0.0, False


def _momenta(env: CabinEnv) -> tuple[np.ndarray, np.ndarray]:
    """Linear momentum (kg m/s) and angular momentum about the COM (kg m^2/s), world."""
    m, d = env.model, env.data
    b = m.body("box").id
    v = env.joint_qvel("box")
    r = d.ximat[b].reshape(3, 3)  # principal inertia axes in the world frame
    inertia_world = r @ np.diag(m.body_inertia[b]) @ r.T
    omega_world = d.xmat[b].reshape(3, 3) @ v[3:]
    return m.body_mass[b] * v[:3], inertia_world @ omega_world


def test_pushed_object_drifts_at_constant_momentum() -> None:
    env = _Probe()
    env.reset(seed=0)
    env.set_free_body("box", env.body_pos("box"), env.body_quat("box"),
                      linvel=np.array([0.04, -0.02, 0.01]), angvel=np.array([0.3, 0.5, -0.2]))
    mujoco.mj_forward(env.model, env.data)
    p0, l0 = _momenta(env)
    x0 = env.body_pos("box")
    for _ in range(100):  # 5 s with zero commands: no contact, no gravity, no drag
        env.step(np.array([0, 0, 0, 0, 0, 0, -1.0]))
    p1, l1 = _momenta(env)
    assert env.data.ncon == 0
    np.testing.assert_allclose(p1, p0, rtol=1e-6, atol=1e-9)
    assert np.linalg.norm(l1 - l0) < 0.02 * np.linalg.norm(l0)
    # straight-line drift: x(5 s) = x0 + v t, to within one 5 ms physics step of motion
    np.testing.assert_allclose(env.body_pos("box") - x0, p0 / env.model.body("box").mass * 5.0,
                               atol=0.005 * 0.05)


@pytest.mark.parametrize("task", list(TASKS))
def test_every_task_is_zero_g_without_drag(task: str) -> None:
    env = make_env(task)
    opt = env.unwrapped.model.opt
    assert np.all(opt.gravity == 0) and opt.density == 0 and opt.viscosity == 0


@pytest.mark.parametrize("task", list(TASKS))
def test_layout_spaces_and_seeding(task: str) -> None:
    env = make_env(task)
    layout = env.unwrapped.obs_layout()
    assert layout[0].name == "gripper_pos"
    assert layout[-1].slice.stop == env.observation_space.shape[0]
    assert all(f.doc for f in layout)
    assert env.unwrapped.SUCCESS_CRITERION
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs) and info["success"] is False
    np.testing.assert_allclose(obs[layout[0].slice], env.unwrapped.gripper_pos)
    assert layout[1].name == "gripper_rot6"  # x and z axes, never a sign-ambiguous quaternion
    rot6 = obs[layout[1].slice]
    np.testing.assert_allclose(rot6[:3], env.unwrapped.gripper_mat[:, 0], atol=1e-12)
    np.testing.assert_allclose(rot6[3:], env.unwrapped.gripper_mat[:, 2], atol=1e-12)
    assert not any("quat" in f.name for f in layout)
    held = {f.name: f for f in layout}["grasped"]
    assert held.size == len(env.unwrapped.GRASPS) and not obs[held.slice].any()
    obs2, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs, obs2)
    masses = env.unwrapped.model.body_mass.copy()
    env.reset(seed=4)
    assert not np.array_equal(masses, env.unwrapped.model.body_mass)  # masses re-drawn
    assert make_expert(task, env) is not None


@pytest.mark.parametrize("task", list(TASKS))
def test_expert_succeeds_on_held_out_seeds(task: str) -> None:
    env = make_env(task)
    expert = make_expert(task, env)
    wins = 0
    for seed in range(1000, 1020):
        expert.reset()
        wins += rollout(env.unwrapped, seed, expert.act, success_reward=0.0)[0]
    assert wins >= 18, f"{task}: expert succeeded on only {wins}/20 held-out seeds"


@pytest.mark.parametrize("task", list(TASKS))
def test_seeded_trajectories_are_reproducible(task: str) -> None:
    env = make_env(task)
    actions = np.random.default_rng(0).uniform(-1.0, 1.0, size=(40, 7))

    def trajectory(seed: int) -> np.ndarray:
        obs, _ = env.reset(seed=seed)
        return np.array([obs] + [env.step(a)[0] for a in actions])

    a, b, c = trajectory(1300), trajectory(1300), trajectory(1301)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], c[0]) and not np.allclose(a, c)


def test_action_moves_gripper_by_the_documented_step() -> None:
    """A constant command of 2 cm and 0.1 rad per step moves the gripper along the commanded
    axes at TRACKING_RATIO of the command per step once settled (the compliant drive)."""
    env = _Probe()
    env.reset(seed=1)
    for _ in range(3):
        env.step(np.zeros(7))
    poses = []
    for _ in range(8):
        env.step(np.array([0.4, 0, 0, 0, 0, 0.2, -1]))
        poses.append((env.gripper_pos, env.gripper_quat))
    (p0, q0), (p1, q1) = poses[-2], poses[-1]
    dp = p1 - p0
    assert dp[0] == pytest.approx(0.02 * TRACKING_RATIO, rel=0.03)
    assert np.abs(dp[1:]).max() < 1e-4
    turned = rot.quat_error(q1, q0)
    assert turned[2] == pytest.approx(0.1 * TRACKING_RATIO, rel=0.03)
    assert np.abs(turned[:2]).max() < 1e-4


def test_unknown_task_lists_valid_names() -> None:
    with pytest.raises(TaskError, match="valid tasks: hatch, stow, cap, panel, drawer"):
        make_env("hatchet")


def test_readme_field_tables_match_the_layouts() -> None:
    """The README lists every task's observation fields in order, with their sizes."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for task in TASKS:
        env = make_env(task).unwrapped
        layout = env.obs_layout()
        common = ", ".join(f"`{f.name}` {f.size}" for f in layout[4:])
        assert f"| `{task}` | {common} |" in readme, task
        assert f"| {env.observation_space.shape[0]} |" in readme


def test_a_numerical_blow_up_ends_the_episode_quietly(capfd: pytest.CaptureFixture[str],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """MuJoCo resets a blown-up simulation: that step is truncated, never a success, and
    its warning goes to the ``spikeflight.sim`` log, not into stdout (``--json``)."""
    env = make_env("stow")
    env.reset(seed=0)
    env.unwrapped.data.qvel[:] = np.nan
    obs, reward, term, trunc, info = env.step(np.zeros(7))
    assert (term, trunc, info["unstable"], info["success"]) == (False, True, True, False)
    assert np.isfinite(obs).all()
    assert capfd.readouterr().out == ""
    assert any(r.name == "spikeflight.sim" and "Nan, Inf or huge value in QVEL" in r.message
               for r in caplog.records)
    _, _, _, trunc, info = env.step(np.zeros(7))  # the next step is an ordinary one again
    assert "unstable" not in info
