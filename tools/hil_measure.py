"""Measurements with limits for hardware-in-the-loop runs (OpenHTF's measurements and
validators), verdicts, and the JSON and JUnit reports.

Every scenario records the same named measurements; each has a pass range and, where one
makes sense, a narrower marginal range inside it (OpenHTF ``in_range`` with
``marginal_minimum`` / ``marginal_maximum``). A measurement outside its pass range FAILs,
inside the pass range but outside the marginal one it is MARGINAL, else PASS; a scenario
takes its worst measurement's verdict and a run its worst scenario's.

| measurement | units | pass | marginal |
|---|---|---|---|
| success_rate | 1 | >= min_success | >= min_success + 0.1 |
| deadline_misses | ticks | 0 | - |
| latency_p50_ms, latency_p99_ms, latency_max_ms | ms | <= 0.8 dt (real clock) | <= 0.4 dt |
| energy_uj_per_chunk | uJ | recorded (the device's energy source: model or board trace) | - |
| frames_dropped | frames | recorded (bad CRC, both ends) | - |
| corrupt_frames_acted_on | frames | 0 | - |
| undetected_corruptions | frames | 0 | - |
| held_ticks | ticks | recorded (plant held position) | - |
| safe_mode_entries | entries | >= episodes the link was lost in (link-loss) | - |
| unrecovered_safe_modes | entries | 0 | - |
| time_in_safe_mode_s | s | recorded | - |
| windows_over_budget | windows | 0 | - |
| upsets_injected | upsets | recorded (seu) | - |
| undetected_upsets, unrepaired_upsets | upsets | 0 | - |
| detection_latency_max_s | s | <= one scrub period | - |
| implausible_chunks | chunks | recorded (held by the plausibility check) | - |
| impulses | kicks | recorded (disturbance: velocity kicks given to drifting bodies) | - |
| world_model_vetoes | chunks | recorded (the device's world-model guard refused them) | - |
| anomalies_flagged | chunks | recorded (the guard's prediction error stayed high) | - |

Round-trip latency is measured at the plant, from sending a frame to receiving its answer:
the device's planning (a chunk's denoising on its backend) plus the link both ways.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from junit_xml import TestCase, TestSuite, to_xml_report_string
from openhtf.core.measurements import Measurement

from hardware.hil.plant import DEADLINE_FRACTION
from hardware.hil.scenarios import Scenario
from runtime.hil_device import LOSS_TICKS
from runtime.scrubber import SCRUB_TICKS

VERDICTS = ("PASS", "MARGINAL", "FAIL")


def _m(name: str, units: str, value: Any, **limits: float) -> Measurement:
    m = Measurement(name).with_units(units) if units else Measurement(name)
    if limits:
        m = m.in_range(**limits)
    m.measured_value.set(value)
    m.validate()
    return m


def measure(scenario: Scenario, result: dict[str, Any], min_success: float,
            clock: str = "virtual", dt: float = 0.05,
            scrub_ticks: int = SCRUB_TICKS) -> list[Measurement]:
    """The scenario's measurements from ``tools.hil.run_scenario``'s result (latency limits
    apply with the real clock only: in lock-step nothing waits for the wall clock)."""
    plant, dev = result["plant"], result["device"]
    link = dev["link"]
    lat = np.concatenate([e["latencies_ms"] for e in plant]) if plant else np.zeros(1)
    corrupted = {(e["seed"], k) for e in plant for k in e["corrupted_sensor"]}
    acted = sum(tuple(d) in corrupted for d in link["delivered"])
    injected_s = sum(len(e["corrupted_sensor"]) for e in plant)
    injected_a = sum(len(e["corrupted_actuator"]) for e in plant)
    plant_bad = sum(e["bad_frames"] for e in plant)
    undetected = max(0, injected_s - link["bad_frames"]) + max(0, injected_a - plant_bad)
    lost_in = sum(1 for e in plant if e["steps"] > scenario.loss_start + LOSS_TICKS
                  ) if scenario.loss_ticks >= LOSS_TICKS else 0
    wins = sum(e["success"] for e in plant)
    rate = wins / len(plant) if plant else 0.0
    top = 1e3 * dt * DEADLINE_FRACTION
    lat_limits = {"maximum": top, "marginal_maximum": top / 2} if clock == "real" else {}
    out = [
        _m("success_rate", "", rate, minimum=min_success,
           marginal_minimum=min(1.0, min_success + 0.1)),
        _m("deadline_misses", "", sum(e["deadline_misses"] for e in plant), maximum=0),
    ]
    for name, v in (("latency_p50_ms", np.median(lat)), ("latency_p99_ms",
                    np.percentile(lat, 99)), ("latency_max_ms", lat.max())):
        out.append(_m(name, "ms", float(v), **lat_limits))
    out += [
        _m("energy_uj_per_chunk", "", dev["energy_j_per_chunk"] * 1e6),
        _m("frames_dropped", "", link["bad_frames"] + plant_bad),
        _m("corrupt_frames_acted_on", "", acted, maximum=0),
        _m("undetected_corruptions", "", undetected, maximum=0),
        _m("held_ticks", "", sum(e["held_ticks"] for e in plant)),
        _m("safe_mode_entries", "", link["safe_mode_entries"], minimum=lost_in),
        _m("unrecovered_safe_modes", "", link["safe_mode_entries"] - link["safe_mode_exits"],
           maximum=0),
        _m("time_in_safe_mode_s", "s", link["safe_mode_ticks"] * dt),
        _m("windows_over_budget", "", dev["windows_over_budget"], maximum=0),
    ]
    mem = dev["memory"]
    lat_ticks = mem["detection_latency_ticks"]
    out += [
        _m("upsets_injected", "", mem["upsets_injected"]),
        _m("undetected_upsets", "", mem["upsets_injected"] - mem["upsets_detected"], maximum=0),
        _m("unrepaired_upsets", "", mem["upsets_injected"] - mem["upsets_repaired"], maximum=0),
        _m("detection_latency_max_s", "s", max(lat_ticks, default=0) * dt,
           maximum=scrub_ticks * dt),
        _m("implausible_chunks", "", mem["implausible_chunks"]),
        _m("impulses", "", sum(e["impulses"] for e in plant)),
        _m("world_model_vetoes", "", dev.get("vetoes", 0)),
        _m("anomalies_flagged", "", dev.get("anomalies", 0)),
    ]
    return out


def verdict(m: Measurement) -> str:
    if m.outcome.name == "FAIL":
        return "FAIL"
    return "MARGINAL" if m.marginal else "PASS"


def worst(verdicts: list[str]) -> str:
    return max(verdicts, key=VERDICTS.index, default="PASS")


def record(scenario: Scenario, result: dict[str, Any], ms: list[Measurement]) -> dict[str, Any]:
    """The JSON record of one scenario: every measurement with its limits and verdict."""
    rows = [{"name": m.name, "value": m.measured_value.value,
             "units": m.units.suffix if m.units else "",
             "limits": [str(v) for v in m.validators], "verdict": verdict(m)} for m in ms]
    return {"scenario": scenario.name, "params": scenario.params(),
            "verdict": worst([r["verdict"] for r in rows]), "measurements": rows,
            "episodes": [{k: e[k] for k in ("seed", "success", "steps", "held_ticks",
                                            "deadline_misses", "actions_sha256")}
                         for e in result["plant"]],
            "device": {k: v for k, v in result["device"].items() if k != "link"},
            "link": {k: v for k, v in result["device"]["link"].items() if k != "delivered"}}


def junit(records: list[dict[str, Any]], name: str = "spikeflight-hil") -> str:
    """JUnit XML: a test suite per scenario, a test case per measurement (FAIL: a failure;
    MARGINAL: passes, with the word in its output)."""
    suites = []
    for rec in records:
        cases = []
        for m in rec["measurements"]:
            case = TestCase(m["name"], classname=f"{name}.{rec['scenario']}",
                            stdout=f"{m['verdict']}: {m['value']} {m['units']} "
                                   f"(limits {', '.join(m['limits']) or 'none'})")
            if m["verdict"] == "FAIL":
                case.add_failure_info(message=f"{m['value']} outside {', '.join(m['limits'])}")
            cases.append(case)
        suites.append(TestSuite(rec["scenario"], cases))
    return to_xml_report_string(suites)
