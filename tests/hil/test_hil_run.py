"""Hardware-in-the-loop runs: the device agent process flies its confirmed image against the
plant over a pty; nominal equals the in-process runtime episode by episode; faults are
handled as the scenarios promise; reports carry every measurement with its limits."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from junitparser import Failure, JUnitXml

from hardware.hil.scenarios import NOMINAL, SCENARIOS
from hardware.sim.registry import make_env
from runtime.flight import FlightConfig, fly
from runtime.hil_device import LOSS_TICKS
from runtime.loader import load_flight_policy
from tests.fixtures.device import cli
from tools.hil import run_scenario
from tools.hil_measure import measure, record, verdict

SEEDS = [10_000, 10_001]


class Recording(gym.Wrapper):
    """Keeps the SHA-256 of the actions of every episode."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.digests: list = []

    def reset(self, **kw):
        import hashlib

        self.digests.append(hashlib.sha256())
        return self.env.reset(**kw)

    def step(self, action):
        self.digests[-1].update(np.ascontiguousarray(action, "<f8").tobytes())
        return self.env.step(action)


def test_nominal_hil_equals_the_in_process_runtime_episode_by_episode(fleet, device_storage
                                                                      ) -> None:
    res = run_scenario(NOMINAL, device_storage, fleet["pub"], "cpu-fixed", "hatch", SEEDS,
                       backend="onnx-fixed")
    env = Recording(make_env("hatch"))
    runs: list = []
    fly(load_flight_policy(fleet["A"], fleet["pub"]), env,
        FlightConfig(backend="onnx-fixed", record_phases=False), len(SEEDS), SEEDS[0],
        on_episode=runs.append)
    hil = res["plant"]
    assert [e["seed"] for e in hil] == SEEDS
    assert [e["success"] for e in hil] == [r.success for r in runs]
    assert [e["steps"] for e in hil] == [r.steps for r in runs]
    assert [e["actions_sha256"] for e in hil] == [d.hexdigest() for d in env.digests]
    assert res["device"]["link"]["bad_frames"] == 0 and all(e["held_ticks"] == 0 for e in hil)


@pytest.mark.slow  # compiles the shipped policy (about 45 s): make test-all
def test_the_shipped_policy_flies_the_same_episodes_in_hil_and_in_process(tmp_path) -> None:
    """The shipped hatch policy, compiled for cpu-fixed, over the pty in lock-step: every
    episode's success, steps and action digest as the in-process runtime flies them."""
    from policies.checkpoint import shipped

    key, image, report = tmp_path / "k", tmp_path / "hatch.sfimg", tmp_path / "hil.json"
    assert cli("keys", "generate", "-o", key).returncode == 0
    res = cli("compile", shipped("hatch"), "--target", "cpu-fixed", "--key", key, "-o", image,
              timeout_s=600)
    assert res.returncode == 0, res.stderr
    pub = key.with_name("k.pub")
    res = cli("hil", "run", image, "--pubkey", pub, "--suite", "nominal", "--episodes", "5",
              "--backend", "onnx-fixed", "--json", report, timeout_s=600)
    assert res.returncode == 0, res.stderr
    hil = json.loads(report.read_text())["scenarios"][0]["episodes"]
    env = Recording(make_env("hatch"))
    runs: list = []
    fly(load_flight_policy(image, pub), env, FlightConfig(backend="onnx-fixed"), 5, 10_000,
        on_episode=runs.append)
    assert [e["success"] for e in hil] == [r.success for r in runs]
    assert [e["steps"] for e in hil] == [r.steps for r in runs]
    assert [e["actions_sha256"] for e in hil] == [d.hexdigest() for d in env.digests]


@pytest.fixture(scope="module")
def virtual(fleet, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The first seed's nominal episode in lock-step (on its own copy of the device)."""
    storage = tmp_path_factory.mktemp("virtual") / "device"
    shutil.copytree(fleet["provisioned"], storage)
    return run_scenario(NOMINAL, storage, fleet["pub"], "cpu-fixed", "hatch", SEEDS[:1],
                        backend="onnx-fixed")["plant"][0]


def test_a_module_callable_env_is_the_plant(fleet, device_storage, virtual) -> None:
    own = run_scenario(NOMINAL, device_storage, fleet["pub"], "cpu-fixed",
                       "hardware.sim.tasks.hatch:HatchEnv", SEEDS[:1],
                       backend="onnx-fixed")["plant"][0]
    assert own["actions_sha256"] == virtual["actions_sha256"]


def test_the_real_clock_gives_the_virtual_clocks_episode_when_no_tick_is_late(
        fleet, device_storage, virtual) -> None:
    """20 Hz wall time over UDP: the same episode, action for action, as lock-step (a late
    answer would legitimately change it: the plant holds position for that tick)."""
    real = run_scenario(NOMINAL, device_storage, fleet["pub"], "cpu-fixed", "hatch",
                        SEEDS[:1], clock="real", link="udp:127.0.0.1:0",
                        backend="onnx-fixed")["plant"][0]
    assert real["steps"] == virtual["steps"] and len(real["latencies_ms"]) == real["steps"] - (
        real["deadline_misses"])
    if real["deadline_misses"]:
        assert real["held_ticks"] == real["deadline_misses"]
        pytest.skip(f"{real['deadline_misses']} late ticks on a loaded machine: the episodes "
                    "may differ")
    assert real["actions_sha256"] == virtual["actions_sha256"]
    assert real["held_ticks"] == 0


def test_corrupt_frames_are_dropped_counted_and_never_reach_the_policy(fleet, device_storage
                                                                       ) -> None:
    sc = replace(SCENARIOS["corrupt-frames"], corrupt_p=0.2)
    res = run_scenario(sc, device_storage, fleet["pub"], "cpu-fixed", "hatch", SEEDS[:1],
                       backend="onnx-fixed")
    ep, link = res["plant"][0], res["device"]["link"]
    assert len(ep["corrupted_sensor"]) > 5 and len(ep["corrupted_actuator"]) > 5
    assert link["bad_frames"] == len(ep["corrupted_sensor"])  # every one caught by the CRC
    assert ep["bad_frames"] == len(ep["corrupted_actuator"])
    delivered = {tuple(d) for d in link["delivered"]}
    assert not delivered & {(ep["seed"], k) for k in ep["corrupted_sensor"]}
    ms = {m.name: m for m in measure(sc, res, min_success=0.0)}
    assert ms["corrupt_frames_acted_on"].measured_value.value == 0
    assert verdict(ms["undetected_corruptions"]) == "PASS"


def test_link_loss_enters_and_leaves_safe_mode(fleet, device_storage) -> None:
    sc = SCENARIOS["link-loss"]
    res = run_scenario(sc, device_storage, fleet["pub"], "cpu-fixed", "hatch", SEEDS[:1],
                       backend="onnx-fixed")
    ep, link = res["plant"][0], res["device"]["link"]
    assert ep["lost"] == list(range(sc.loss_start, sc.loss_start + sc.loss_ticks))
    assert ep["held_ticks"] == sc.loss_ticks
    assert link["safe_mode_entries"] == link["safe_mode_exits"] == 1
    (event,) = link["events"]
    assert event["tick"] == sc.loss_start - 1 + LOSS_TICKS
    assert event["recovered_tick"] == sc.loss_start + sc.loss_ticks
    assert link["safe_mode_ticks"] == sc.loss_ticks + 1 - LOSS_TICKS
    rec = record(sc, res, measure(sc, res, min_success=0.0))
    rows = {m["name"]: m for m in rec["measurements"]}
    assert rows["safe_mode_entries"]["verdict"] == "PASS"
    assert rows["unrecovered_safe_modes"]["limits"] == ["x <= 0"]


def test_cli_reports_read_back_with_a_junit_parser(fleet, tmp_path: Path) -> None:
    junit, report, png = tmp_path / "hil.xml", tmp_path / "hil.json", tmp_path / "p/hil.png"
    res = cli("hil", "run", fleet["A"], "--pubkey", fleet["pub"], "--suite",
              "nominal,sensor-noise", "-n", "1", "--backend", "onnx-fixed", "--storage",
              tmp_path / "dev", "--min-success", "1.0", "--junit", junit, "--json", report,
              "--plot", png)
    assert png.exists(), res.stderr[-3000:] + res.stdout[-1500:]
    from PIL import Image

    with Image.open(png) as im:  # a row per scenario
        assert im.format == "PNG" and im.size == (1200, 640)
    data = json.loads(report.read_text())
    assert [s["scenario"] for s in data["scenarios"]] == ["nominal", "sensor-noise"]
    assert data["verdict"] == "FAIL" and res.returncode == 1  # the tiny policy never succeeds
    assert "HIL run: FAIL" in res.stdout
    xml = JUnitXml.fromfile(str(junit))
    suites = list(xml)
    n = len(data["scenarios"][0]["measurements"])
    assert [s.name for s in suites] == ["nominal", "sensor-noise"]
    assert all(s.tests == n for s in suites)
    failed = [c.name for s in suites for c in s if any(isinstance(r, Failure) for r in c.result)]
    assert failed == ["success_rate", "success_rate"]
    success = data["scenarios"][0]["measurements"][0]
    assert success["name"] == "success_rate" and success["verdict"] == "FAIL"
    assert success["limits"] and "1.0" in success["limits"][0]


@pytest.mark.parametrize(("args", "words"), [
    (["--suite", "nominal,meteor"], ["unknown scenario meteor", "choose from"]),
    (["--clock", "sundial"], ["--clock must be one of virtual, real"]),
    (["--power-trace", "no-such-trace.csv"], ["no-such-trace.csv: no such trace file"]),
])
def test_bad_options_fail_in_one_line(fleet, tmp_path: Path, args: list, words: list) -> None:
    from tests.tools.test_data_cli import assert_one_line_error

    res = cli("hil", "run", fleet["A"], "--pubkey", fleet["pub"], "--storage",
              tmp_path / "dev", *args)
    assert_one_line_error(res, *words)
    assert not (tmp_path / "dev").exists()


def test_brownout_cuts_the_budget_and_no_window_goes_over_it(fleet, device_storage) -> None:
    from runtime.image import load_image, read_image
    from tools.hil import default_budget_w

    sc = SCENARIOS["brownout"]
    budget = default_budget_w(read_image(load_image(fleet["A"])).manifest)
    res = run_scenario(sc, device_storage, fleet["pub"], "cpu-fixed", "hatch", SEEDS[:1],
                       backend="onnx-fixed", budget_w=budget)
    dev = res["device"]
    (t_cut, watts), = dev["budget_changes"]
    assert t_cut == pytest.approx(sc.brownout_tick * 0.05) and watts == pytest.approx(
        budget * sc.brownout_scale)
    assert dev["windows"] > 3 and dev["windows_over_budget"] == 0
    assert dev["safe_steps"] > 0  # the tiny image's one operating point no longer fits
    ms = {m.name: m for m in measure(sc, res, min_success=0.0)}
    assert verdict(ms["windows_over_budget"]) == "PASS"


def test_the_governor_reads_a_replayed_board_trace_instead_of_its_model(
        fleet, device_storage, tmp_path: Path) -> None:
    """A rail that draws twice what the model predicts: the governor books the trace's
    energy per planning tick, learns from the first chunk that the point no longer fits
    and holds in safe mode before the brown-out (the model alone flies until the cut)."""
    from runtime.image import load_image, read_image
    from tools.hil import default_budget_w

    manifest = read_image(load_image(fleet["A"])).manifest
    (point,) = manifest["operating_points"]
    model_w = point["energy_j"] / (point["replan"] * 0.05)
    rail_w = 2 * model_w * point["replan"]  # per planning tick: twice the model's chunk
    trace = tmp_path / "board.csv"
    trace.write_text(f"t_s,power_w\n0,{rail_w!r}\n3.5,{rail_w!r}\n")
    res = run_scenario(SCENARIOS["brownout"], device_storage, fleet["pub"], "cpu-fixed",
                       "hatch", SEEDS[:1], backend="onnx-fixed",
                       budget_w=default_budget_w(manifest), power_trace=trace)
    dev = res["device"]
    assert dev["energy_source"] == "replay:board.csv"
    (ep,) = dev["episodes_detail"]
    assert ep["chunk_t_s"] == [0.0]  # one chunk, then safe mode
    assert ep["chunk_energy_j"] == [pytest.approx(2 * point["energy_j"], rel=1e-9)]
    assert dev["windows_over_budget"] == 0 and dev["safe_steps"] == ep["steps"] - point["replan"]


def test_seu_every_upset_detected_and_repaired_within_a_scrub_period(fleet, device_storage
                                                                     ) -> None:
    sc = replace(SCENARIOS["seu"], seu_rate_hz=4.0)
    res = run_scenario(sc, device_storage, fleet["pub"], "cpu-fixed", "hatch", SEEDS[:1],
                       backend="onnx-fixed")
    mem = res["device"]["memory"]
    assert mem["upsets_injected"] > 20
    assert mem["upsets_detected"] == mem["upsets_repaired"] == mem["upsets_injected"]
    assert max(mem["detection_latency_ticks"]) < 10  # the default scrub period
    rows = {m.name: verdict(m) for m in measure(sc, res, min_success=0.0)}
    assert rows["undetected_upsets"] == rows["detection_latency_max_s"] == "PASS"


def test_a_plant_fault_changes_the_world_the_device_flies_in(fleet, device_storage,
                                                             virtual) -> None:
    sc = SCENARIOS["sensor-bias"]
    assert sc.params() == {"plant_fault": "sensor-bias", "fault_start": 20}
    res = run_scenario(sc, device_storage, fleet["pub"], "cpu-fixed", "hatch", SEEDS[:1],
                       backend="onnx-fixed")
    ep = res["plant"][0]
    assert ep["steps"] == virtual["steps"] and ep["actions_sha256"] != virtual["actions_sha256"]
    rows = {m.name: m.measured_value.value for m in measure(sc, res, 0.0)}
    assert rows["anomalies_flagged"] == 0  # the tiny image carries no world model
