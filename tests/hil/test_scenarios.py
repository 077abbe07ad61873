"""Fault scenarios: parameters, seeding, disturbance kicks, brown-out timing."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.errors import SpikeflightError
from hardware.hil.scenarios import SCENARIOS, Faults, parse_suite
from hardware.sim.registry import make_env


def test_disturbance_kicks_every_drifting_body_but_the_gripper() -> None:
    sc = SCENARIOS["disturbance"]
    env = make_env("stow")
    env.reset(seed=3)
    u = env.unwrapped
    before, grip = u.joint_qvel("payload")[:3], u.joint_qvel("gripper")
    f = Faults(sc, 3)
    assert f.disturb(env, sc.impulse_every - 1) == 0
    assert f.disturb(env, sc.impulse_every) == 1
    dv = u.joint_qvel("payload")[:3] - before
    assert np.linalg.norm(dv) == pytest.approx(sc.impulse_mps)
    np.testing.assert_array_equal(u.joint_qvel("gripper"), grip)
    hatch = make_env("hatch")
    hatch.reset(seed=3)
    assert Faults(sc, 3).disturb(hatch, sc.impulse_every) == 0  # nothing drifts in hatch


def test_faults_are_seeded_by_the_episode() -> None:
    sc = SCENARIOS["sensor-noise"]
    obs = np.zeros(5)
    a, b, c = Faults(sc, 1).sense(obs), Faults(sc, 1).sense(obs), Faults(sc, 2).sense(obs)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert SCENARIOS["brownout"].budget_scale(19) == 1.0
    assert SCENARIOS["brownout"].budget_scale(20) == pytest.approx(0.3)
    assert SCENARIOS["actuator-saturation"].params() == {"saturation": 0.5}


def test_suite_names_are_checked() -> None:
    assert [s.name for s in parse_suite("nominal, seu")] == ["nominal", "seu"]
    with pytest.raises(SpikeflightError, match="unknown scenario x; choose from nominal"):
        parse_suite("x")
