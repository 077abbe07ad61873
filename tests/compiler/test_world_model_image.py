"""A student world model packed into a policy image: its graph matches the student, the
image flies it where torch cannot be imported, and the guard vetoes and flags as
documented."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from compiler.world_model import WM_TOL, build_student_graph
from hardware.energy import CMOS45
from hardware.sim.tasks.hatch import HatchEnv
from policies.world_model import WorldModelConfig, load_transitions
from policies.world_model_distill import DistillConfig, distill, load_windows
from policies.world_model_student import StudentConfig, StudentWorldModel
from policies.world_model_train import WorldModelTrainConfig, train_world_model
from runtime.image import load_image, read_image
from runtime.keys import save_keypair
from runtime.world_model import WM_SECTION, StudentGuard
from tests.fixtures.no_torch import run_without_torch
from tests.fixtures.tiny_policy import ACT, OBS, compile_tiny, train_tiny
from tests.tools.test_data_cli import cli


@pytest.fixture(scope="module")
def student_run(tmp_path_factory) -> Path:
    """A tiny teacher and student of the hatch task from 8 expert episodes."""
    root = tmp_path_factory.mktemp("wm-hatch")
    demos = root / "hatch.hdf5"
    res = cli("data", "collect", "--task", "hatch", "--episodes", "8", "--noise", "0.1",
              "-o", str(demos))
    assert res.returncode == 0, res.stderr
    data = load_transitions([str(demos)], OBS, ACT)
    teacher, _ = train_world_model("hatch", data, WorldModelConfig(OBS, ACT, 2, [32]),
                                   WorldModelTrainConfig(iterations=60, threads=1),
                                   root / "teacher")
    windows = load_windows([str(demos)], OBS, ACT, 4)
    distill("hatch", teacher, str(root / "teacher"), windows, StudentConfig(OBS, ACT, 4, [16]),
            DistillConfig(iterations=60, threads=1), root / "student")
    return root / "student"


@pytest.fixture(scope="module")
def wm_image(student_run, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("wm-image")
    private, public = save_keypair(root / "k")
    run = train_tiny(root / "policy", "sdp-sdli")
    image = root / "hatch-wm.sfimg"
    image.write_bytes(compile_tiny(run, "cpu-fixed", private, world_model=student_run,
                                  world_model_episodes=1))
    return image, public


def test_the_image_carries_the_calibrated_student(wm_image) -> None:
    img = read_image(load_image(wm_image[0]))
    wm = img.manifest["world_model"]
    assert WM_SECTION in img.sections and wm["horizon"] == 4
    assert wm["episodes"] == 10 and wm["policy_episodes"] == 1  # expert and policy flights
    assert wm["conformance"]["max_abs_error"] <= WM_TOL
    assert wm["energy_j"] == pytest.approx(CMOS45.ann_joules(wm["macs"]))
    assert wm["macs"] == (OBS + 4 * ACT) * 16 + 16 * (OBS + 1)
    assert [e["field"] for e in wm["envelope"]] == ["hatch_angvel", "latch_angvel"]
    assert all(e["limit"] > 0 for e in wm["envelope"]) and wm["threshold"] > 0
    flags = [f for f in HatchEnv.obs_layout() if f.name in ("grasped", "locked")]
    scale = np.asarray(wm["error_scale"])
    assert all(np.all(scale[f.slice] == 0) for f in flags) and np.count_nonzero(scale) > 20


def test_the_graph_computes_the_student_in_float64() -> None:
    torch.manual_seed(3)
    s = StudentWorldModel(StudentConfig(5, 2, 3, [8, 8])).double()
    for norm, (lo, hi) in ((s.obs_norm, (-2.0, 3.0)), (s.act_norm, (-1.0, 1.0)),
                           (s.delta_norm, (-0.1, 0.3))):
        norm.lo.uniform_(lo, lo + 0.5)
        norm.hi.uniform_(hi - 0.5, hi)
    s.obs_norm.hi[1] = s.obs_norm.lo[1]  # a constant field maps to 0
    import onnxruntime as ort

    sess = ort.InferenceSession(build_student_graph(s).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    obs, acts = np.random.default_rng(0).normal(size=(64, 5)), np.random.default_rng(1).normal(
        size=(64, 3, 2))
    nxt, p = sess.run(None, {"obs": obs, "actions": acts.reshape(64, -1)})
    with torch.no_grad():
        r_nxt, r_p = s(torch.as_tensor(obs), torch.as_tensor(acts))
    assert np.abs(nxt - r_nxt.numpy()).max() <= 1e-12 and np.abs(p - r_p.numpy()).max() <= 1e-12


def test_the_guard_flies_where_torch_cannot_be_imported(wm_image) -> None:
    image, pub = wm_image
    on, off = run_without_torch(f"""
import json
from hardware.sim.registry import make_env
from runtime.flight import FlightConfig, fly
from runtime.loader import load_flight_policy
policy = load_flight_policy({str(image)!r}, {str(pub)!r})
env = make_env('hatch')
on = fly(policy, env, FlightConfig(backend='onnx-fixed'), 1, 10000)
off = fly(policy, env, FlightConfig(backend='onnx-fixed', world_model=False), 1, 10000)
print(json.dumps([on, off]))
""")
    assert on["world_model"] and not off["world_model"]
    wm = read_image(load_image(image)).manifest["world_model"]
    # every chunk books one screening prediction, and an anomaly check every H steps
    assert on["energy_j_per_chunk"] > off["energy_j_per_chunk"] + 0.9 * wm["energy_j"]


def _known_guard(delta: float, threshold: float = 0.05) -> StudentGuard:
    """A student that predicts ``obs + delta`` on dimension 2 after its 2 actions."""
    s = StudentWorldModel(StudentConfig(4, 1, 2, [3]))
    with torch.no_grad():
        for p in s.parameters():
            p.zero_()
        s.net[-1].bias[2] = delta
    entry = {"horizon": 2, "threshold": threshold, "window": 2, "energy_j": 1e-7,
             "error_scale": [1.0] * 4,
             "envelope": [{"field": "body_linvel", "start": 2, "size": 1, "limit": 0.3}]}
    return StudentGuard(build_student_graph(s).SerializeToString(), entry)


def test_a_chunk_that_speeds_a_body_past_its_limit_is_vetoed_one_that_slows_it_is_not(
        ) -> None:
    chunk = np.zeros((4, 1))
    up = _known_guard(0.5)
    v = up.screen(np.array([0.0, 0.0, 0.0, 0.0]), chunk)
    assert not v.accept and "body_linvel would reach 0.5" in v.reason
    assert v.energy_j == pytest.approx(1e-7)
    down = _known_guard(-0.5)
    assert down.screen(np.array([0.0, 0.0, 2.0, 0.0]), chunk).accept  # 2.0 -> 1.5: slower
    assert not up.screen(np.array([0.0, 0.0, 2.0, 0.0]), chunk).accept  # 2.0 -> 2.5


def test_an_error_that_stays_above_the_threshold_is_flagged() -> None:
    g = _known_guard(0.2, threshold=0.05)  # predicts a change that never comes
    obs, act = np.zeros(4), np.zeros(1)
    verdicts = []
    for _ in range(4):  # two steps per chunk
        verdicts.append(g.screen(obs, np.zeros((2, 1))))
        g.observe(obs, act)
        g.observe(obs, act)
    verdicts.append(g.screen(obs, np.zeros((2, 1))))
    # error = sqrt(mean((0.2 * 2/2)^2 over 4 dims)) = 0.1; flagged once 2 errors are in
    assert [v.flagged for v in verdicts] == [False, False, True, True, True]
    assert verdicts[-1].anomaly == pytest.approx(0.1)
    assert verdicts[-1].energy_j == pytest.approx(2e-7)  # the check and the screening
    g.reset()
    assert not g.screen(obs, np.zeros((2, 1))).flagged


def test_detection_delay_and_false_alarms_are_counted_as_documented() -> None:
    from runtime.executive import EpisodeResult
    from tools.anomalies import _row

    eps = [EpisodeResult(seed=1, steps=100, first_anomaly_step=26),  # detected, 6 steps
           EpisodeResult(seed=2, steps=100, first_anomaly_step=10),  # before the fault
           EpisodeResult(seed=3, steps=100),  # missed
           EpisodeResult(seed=4, steps=15, success=True)]  # over before the fault
    row = _row("grasp-slip", eps, start=20)
    assert (row["faulted"], row["detected"], row["false_alarms"]) == (3, 1, 1)
    assert row["detection_rate"] == pytest.approx(1 / 3)
    assert row["delay_s_median"] == pytest.approx(0.3) and row["success"] == 1
    nominal = _row("nominal", eps, start=20)
    assert nominal["false_alarms"] == 2 and nominal["detection_rate"] is None


def test_anomalies_command_reports_every_fault(wm_image) -> None:
    image, pub = wm_image
    res = cli("world-model", "anomalies", str(image), "--pubkey", str(pub), "-n", "1",
              "--start", "10", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert [r["fault"] for r in out["faults"]] == ["nominal", "stuck-joint", "grasp-slip",
                                                   "sensor-bias", "mass-change"]
    assert all(r["episodes"] == 1 for r in out["faults"])


class VetoFirst:
    """Vetoes every other chunk it sees, starting with the first."""

    def __init__(self) -> None:
        self.calls = 0

    def reset(self) -> None:
        pass

    def observe(self, obs, action) -> None:
        pass

    def screen(self, obs, chunk):
        from runtime.world_model import Verdict

        self.calls += 1
        return Verdict(accept=self.calls % 2 == 0, reason="odd", energy_j=1e-9)


def test_candidates_fly_in_one_call_and_a_vetoed_one_gives_way_to_the_next(wm_image) -> None:
    from hardware.sim.registry import make_env
    from runtime.backends import chain_for
    from runtime.executive import Executive, operating_points
    from runtime.loader import load_flight_policy
    from runtime.telemetry import Telemetry

    policy = load_flight_policy(*wm_image)
    out = {}
    for n in (1, 2):
        with Telemetry(None) as tel:
            chain = chain_for(policy, "onnx-fixed")
            ex = Executive(policy, chain, tel, guard=VetoFirst(),
                           points=operating_points(policy, n))
            out[n] = ex.run_episode(make_env("hatch"), 10000, max_steps=8)
            chain.close()
    assert out[1].safe_steps == out[1].vetoes > 0  # a vetoed plan holds position
    assert out[2].safe_steps == 0 and out[2].vetoes == out[2].chunks // 2  # the 2nd flies
    calls = len(out[2].chunk_energy_j)  # one backend call per plan, both candidates booked
    assert calls == len(out[2].latencies_ms) == out[2].chunks // 2
    # the first plans start from the same state, and candidate 0 has the unscreened noise
    assert out[2].chunk_energy_j[0] > 1.5 * out[1].chunk_energy_j[0]


class AcceptAll(VetoFirst):
    def screen(self, obs, chunk):
        from runtime.world_model import Verdict

        return Verdict(accept=True, reason="", energy_j=1e-9)


def test_a_screened_flight_that_vetoes_nothing_flies_the_unscreened_episode(wm_image) -> None:
    """The extra candidates draw from their own stream: plan after plan, candidate 0 is
    the chunk an unscreened flight computes, so the two fly the same actions."""
    import gymnasium as gym

    from hardware.sim.registry import make_env
    from runtime.backends import chain_for
    from runtime.executive import Executive, operating_points
    from runtime.loader import load_flight_policy
    from runtime.telemetry import Telemetry

    class Recorder(gym.Wrapper):
        def __init__(self, env):
            super().__init__(env)
            self.actions = []

        def step(self, action):
            self.actions.append(np.array(action))
            return self.env.step(action)

    policy = load_flight_policy(*wm_image)
    acts = {}
    for n in (1, 3):
        env = Recorder(make_env("hatch"))
        with Telemetry(None) as tel:
            chain = chain_for(policy, "onnx-fixed")
            res = Executive(policy, chain, tel, guard=AcceptAll(),
                            points=operating_points(policy, n)).run_episode(env, 10000, 24)
            chain.close()
        assert res.chunks == n * len(res.latencies_ms) and len(res.latencies_ms) > 2
        acts[n] = np.array(env.actions)
    np.testing.assert_array_equal(acts[1], acts[3])


def test_screening_operating_points_cost_n_chunks_and_n_plus_one_predictions(
        wm_image) -> None:
    from runtime.executive import WM_PREDICTIONS, operating_points
    from runtime.loader import load_flight_policy

    policy = load_flight_policy(*wm_image)
    one, four = operating_points(policy), operating_points(policy, 4)
    wm_j = float(policy.manifest["world_model"]["energy_j"])
    for a, b in zip(one, four, strict=True):
        assert b.name == f"{a.name}+screen4" and b.replan == a.replan
        chunk_j = a.energy_j - WM_PREDICTIONS * wm_j
        assert abs(b.energy_j - (4 * chunk_j + (WM_PREDICTIONS + 3) * wm_j)) < 1e-15


def test_run_reports_the_guard_and_refuses_zero_candidates(wm_image) -> None:
    from tests.tools.test_data_cli import assert_one_line_error

    image, pub = wm_image
    res = cli("run", str(image), "--pubkey", str(pub), "-n", "1", "--backend", "onnx-fixed",
              "--screen", "2")
    assert res.returncode == 0, res.stderr
    assert "world model: " in res.stdout and "chunks vetoed" in res.stdout
    res = cli("run", str(image), "--pubkey", str(pub), "-n", "1", "--no-world-model")
    assert res.returncode == 0 and "world model: " not in res.stdout
    assert_one_line_error(cli("run", str(image), "--pubkey", str(pub), "--screen", "0"),
                          "candidates per chunk must be >= 1")


def test_the_hil_device_flies_the_guard_and_reports_it(wm_image, tmp_path: Path) -> None:
    from hardware.hil.scenarios import NOMINAL
    from tools.hil import provision, run_scenario
    from tools.hil_measure import measure

    image, pub = wm_image
    storage = tmp_path / "device"
    provision(image, pub, storage, "cpu-fixed", "onnx-fixed")
    on = run_scenario(NOMINAL, storage, pub, "cpu-fixed", "hatch", [10000],
                      backend="onnx-fixed", candidates=2)
    off = run_scenario(NOMINAL, storage, pub, "cpu-fixed", "hatch", [10000],
                       backend="onnx-fixed", world_model=False)
    assert on["device"]["world_model"] and not off["device"]["world_model"]
    names = {m.name: m.measured_value.value for m in measure(NOMINAL, on, 0.0)}
    assert names["world_model_vetoes"] == on["device"]["vetoes"]
    assert names["anomalies_flagged"] == on["device"]["anomalies"]


def test_compile_screen_adds_a_measured_screening_twin_of_every_point(
        student_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``compile --screen 3``: every operating point gets a ``+screen3`` twin, both
    measured by flying the image (and only so: no compiler-side ground runs); the
    governor's points cost 3 chunks and 4 predictions for the twin, it flies 3 candidates
    per plan, and without the guard it is left out."""
    from dataclasses import replace

    from compiler.build import CompileError
    from hardware.sim.registry import make_env
    from runtime.backends import chain_for
    from runtime.executive import WM_PREDICTIONS, Executive, operating_points
    from runtime.loader import load_flight_policy
    from runtime.telemetry import Telemetry

    private, public = save_keypair(tmp_path / "k")
    run = train_tiny(tmp_path / "policy", "sdp-sdli")
    with pytest.raises(CompileError, match="--screen needs --world-model"):
        compile_tiny(run, "cpu-fixed", private, screen=3)
    monkeypatch.setattr("compiler.build.Background",
                        lambda *a: pytest.fail("ground runs flown beside the screening"))
    image = tmp_path / "screen.sfimg"
    image.write_bytes(compile_tiny(run, "cpu-fixed", private, world_model=student_run,
                                   world_model_episodes=1, screen=3, ground_episodes=2))
    points = read_image(load_image(image)).manifest["operating_points"]
    base = points[0]["name"]
    assert [p["name"] for p in points] == [base, f"{base}+screen3"]
    assert [p["candidates"] for p in points] == [1, 3]
    assert all(p["ground"] == "runtime" and p["ground_episodes"] == 2
               and 0 <= p["success_rate"] <= 1 for p in points)
    policy = load_flight_policy(image, public)
    one, three = operating_points(policy)
    wm_j = float(policy.manifest["world_model"]["energy_j"])
    chunk_j = one.energy_j - WM_PREDICTIONS * wm_j
    assert three.candidates == 3
    assert abs(three.energy_j - (3 * chunk_j + (WM_PREDICTIONS + 2) * wm_j)) < 1e-15
    assert [p.name for p in operating_points(policy, screening=False)] == [base]
    alone = replace(policy, image=replace(policy.image, manifest={
        **policy.manifest, "operating_points": [points[1]]}))
    with Telemetry(None) as tel:
        chain = chain_for(alone, "onnx-fixed")
        res = Executive(alone, chain, tel, guard=VetoFirst()).run_episode(
            make_env("hatch"), 10000, max_steps=8)
        chain.close()
    assert res.chunks == 3 * len(res.latencies_ms) and res.safe_steps == 0
