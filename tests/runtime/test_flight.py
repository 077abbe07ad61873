"""The onboard runtime flies a verified image: no torch, deterministic, falls back without
losing the episode, holds position when the watchdog fires, never runs a bad image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hardware.sim.registry import make_env
from runtime.backends import LavaBackend, chain_for
from runtime.executive import Executive
from runtime.flight import FlightConfig, fly
from runtime.image import ImageError
from runtime.keys import save_keypair
from runtime.loader import load_flight_policy
from runtime.telemetry import Telemetry, read_telemetry
from runtime.watchdog import Watchdog
from runtime.world_model import NoGuard, Verdict
from tests.fixtures.no_torch import run_without_torch
from tests.tools.test_data_cli import assert_one_line_error, cli

ROOT = Path(__file__).resolve().parents[2]
SEED = 10_007


class Recorder:
    """Wraps an env and keeps every action it is given."""

    def __init__(self, env) -> None:
        self.env, self.actions = env, []
        self.unwrapped, self.action_space, self.spec = env.unwrapped, env.action_space, env.spec

    def reset(self, **kw):
        self.actions = []
        return self.env.reset(**kw)

    def step(self, action):
        self.actions.append(np.array(action))
        return self.env.step(action)


def _episode(policy, backend: str, tmp_path: Path, max_steps: int = 24,
             deadline_s: float | None = None):
    env = Recorder(make_env("hatch"))
    with Telemetry(tmp_path / f"{backend}.jsonl") as tel:
        chain = chain_for(policy, backend, on_event=tel.event)
        dog = Watchdog(deadline_s, on_event=tel.event) if deadline_s else None
        try:
            res = Executive(policy, chain, tel, watchdog=dog).run_episode(env, SEED, max_steps)
        finally:
            chain.close()
        events = tel.records()
    return env.actions, res, events


def test_runtime_runs_where_torch_cannot_be_imported(flight_image) -> None:
    image, pub = flight_image
    out = run_without_torch(f"""
import json
from hardware.sim.registry import make_env
from runtime.flight import FlightConfig, fly
from runtime.loader import load_flight_policy
policy = load_flight_policy({str(image)!r}, {str(pub)!r})
out = fly(policy, make_env('hatch'), FlightConfig(backend='onnx-fixed'), 1, {SEED})
print(json.dumps(out))
""")
    assert out["episodes"] == 1 and out["chunks"] > 0 and out["backends"] == ["onnx-fixed"]


def test_episodes_are_deterministic_for_a_seed(flight_image, tmp_path: Path) -> None:
    policy = load_flight_policy(*flight_image)
    a, _, _ = _episode(policy, "onnx-float", tmp_path)
    b, _, _ = _episode(policy, "onnx-float", tmp_path)
    np.testing.assert_array_equal(np.array(a), np.array(b))


def test_lava_failing_mid_episode_hands_over_to_onnx_fixed_point(flight_image, tmp_path: Path,
                                                                  monkeypatch) -> None:
    policy = load_flight_policy(*flight_image)
    alone, res_alone, _ = _episode(policy, "onnx-fixed", tmp_path)
    calls = {"n": 0}
    real = LavaBackend.chunk

    def flaky(self, *args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("Loihi link lost")
        return real(self, *args)

    monkeypatch.setattr(LavaBackend, "chunk", flaky)
    handed, res, records = _episode(policy, "auto", tmp_path)
    fallbacks = [r for r in records if r["name"] == "fallback"]
    assert len(fallbacks) == 1 and fallbacks[0]["backend"] == "lava"
    assert "Loihi link lost" in fallbacks[0]["reason"] and fallbacks[0]["to"] == "onnx-fixed"
    backends = [r["value"] for r in records if r["name"] == "backend"]
    assert backends[:2] == ["lava", "lava"] and set(backends[2:]) == {"onnx-fixed"}
    assert res.steps == res_alone.steps == len(alone)  # the episode went on, nothing lost
    # Lava and ONNX fixed point are bit-identical: before and after the handover alike
    np.testing.assert_array_equal(np.array(handed), np.array(alone))


def test_a_missed_deadline_holds_position_and_is_reported(flight_image, tmp_path: Path) -> None:
    policy = load_flight_policy(*flight_image)
    actions, res, records = _episode(policy, "onnx-float", tmp_path, max_steps=6,
                                     deadline_s=1e-9)
    assert res.deadline_misses == res.chunks == 6 and res.safe_steps == 6
    assert all(np.all(a[:-1] == 0) for a in actions)  # no motion commanded
    misses = [r for r in records if r["name"] == "deadline_miss"]
    assert len(misses) == 6


@pytest.mark.parametrize("damage", ["unsigned", "tampered", "wrong key"])
def test_a_bad_image_never_runs(flight_image, tmp_path: Path, damage: str) -> None:
    image, pub = flight_image
    data = bytearray(image.read_bytes())
    if damage == "unsigned":
        data = data[:-144]  # the trailer with hash and signature removed
    elif damage == "tampered":
        data[len(data) // 2] ^= 0x40
    else:
        _, pub = save_keypair(tmp_path / "other")
    bad = tmp_path / "bad.sfimg"
    bad.write_bytes(bytes(data))
    with pytest.raises(ImageError):
        load_flight_policy(bad, pub)
    telemetry = tmp_path / "t.jsonl"
    res = cli("run", str(bad), "--pubkey", str(pub), "--episodes", "1", "--telemetry",
              str(telemetry))
    assert_one_line_error(res)
    assert not telemetry.exists()  # nothing ran


def test_run_command_reports_success_latency_energy_and_budget(flight_image,
                                                                tmp_path: Path) -> None:
    image, pub = flight_image
    telemetry = tmp_path / "run.jsonl"
    res = cli("run", str(image), "--pubkey", str(pub), "--episodes", "2", "--backend",
              "onnx-fixed", "--budget-w", "1e-3", "--telemetry", str(telemetry), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["episodes"] == 2 and out["energy_source"] == "cmos45-horowitz2014"
    assert out["latency_ms_p50"] > 0 and out["latency_ms_p99"] >= out["latency_ms_p50"]
    assert out["windows_over_budget"] == 0 and out["windows"] > 0
    assert 0 < out["energy_j_per_chunk"] < 1e-5
    names = {r["name"] for r in read_telemetry(telemetry)}
    assert {"latency_ms", "energy_j", "operating_point", "backend", "firing_rates",
            "governor_state", "episode_end"} <= names


def test_flight_under_a_budget_never_exceeds_it(flight_image) -> None:
    policy = load_flight_policy(*flight_image)
    env = make_env("hatch")
    free = fly(policy, env, FlightConfig(backend="onnx-fixed"), 2, SEED)
    unconstrained = free["average_w"]
    for frac in (1.0, 0.5, 0.25):
        out = fly(policy, env, FlightConfig(backend="onnx-fixed", budget_w=frac * unconstrained,
                                            window_s=1.0), 2, SEED)
        assert out["windows"] > 0 and out["windows_over_budget"] == 0, (frac, out)
    cheapest = min(p["energy_j"] for p in policy.operating_points) / (policy.chunk * 0.05)
    starved = fly(policy, env, FlightConfig(backend="onnx-fixed", budget_w=0.5 * cheapest), 1,
                  SEED)
    assert starved["chunks"] == 0 and starved["safe_steps"] > 0


class VetoAll(NoGuard):
    """A world model that distrusts every chunk."""

    def screen(self, obs, chunk):
        return Verdict(accept=False, anomaly=3.0, flagged=True, reason="predicted collision")


def test_world_model_veto_holds_position_and_flags_the_anomaly(flight_image,
                                                               tmp_path: Path) -> None:
    policy = load_flight_policy(*flight_image)
    env = Recorder(make_env("hatch"))
    with Telemetry(None) as tel:
        chain = chain_for(policy, "onnx-float", on_event=tel.event)
        ex = Executive(policy, chain, tel, guard=VetoAll())
        res = ex.run_episode(env, SEED, max_steps=5)
        chain.close()
        names = [r["name"] for r in tel.events()]
    assert res.safe_steps == 5 and all(np.all(a[:-1] == 0) for a in env.actions)
    assert names.count("world_model_veto") == 5 and names.count("anomaly") == 5
    assert res.vetoes == 5 and res.anomalies == 5


@pytest.mark.parametrize("args,needle", [(["--budget-w", "-1"], "watts must be > 0"),
                                         (["--deadline-ms", "0"], "deadline must be a positive"),
                                         (["--budget-w", "1", "--window-s", "0"], "window_s")])
def test_bad_budget_or_deadline_fails_before_flying(flight_image, tmp_path: Path, args,
                                                    needle: str) -> None:
    image, pub = flight_image
    telemetry = tmp_path / "t.jsonl"
    res = cli("run", str(image), "--pubkey", str(pub), "-n", "1", "--telemetry",
              str(telemetry), *args)
    assert_one_line_error(res, needle)
    assert not telemetry.exists()
