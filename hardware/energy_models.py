"""Named, versioned energy models applied per phase.

The runtime reports what each phase of a chunk did (``PhaseCounts``: wall time, analog
MACs, synaptic operations, spikes, neuron updates); a model turns that into joules and
every figure carries the model's name as its source label (measured figures say
``sensor``). Models:

- ``cmos45-horowitz2014`` (Horowitz, ISSCC 2014, 45 nm): 4.6 pJ per fp32 MAC (analog
  layers, ANN), 0.9 pJ per fp32 add (one per synaptic event):
  ``E = 4.6 pJ (analog_macs + ann_macs) + 0.9 pJ synops``; idle costs nothing.
- ``loihi1-davies2018`` (Davies et al., IEEE Micro 2018, pre-silicon, 14 nm): 23.6 pJ per
  synaptic op, 81 pJ per active and 52 pJ per inactive neuron update, 1.7 pJ per spike:
  ``E = 23.6 synops + 81 spikes + 52 (updates - spikes) + 1.7 spikes`` pJ (a neuron that
  fires in a micro-step counts as active). The analog host part (encoder, input layer,
  readout) does not run on the chip; it is charged at the 45 nm MAC (4.6 pJ) and the
  breakdown says so. A network without spikes (the ANN twin) has no Loihi figure.
- ``cpu-board:NAME``: ``E = active_w x compute seconds + idle_w x idle seconds`` with a
  board's nominal figures (below, with sources) or a user's YAML/TOML profile file
  (``name``, ``active_w``, ``idle_w``, ``source``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hardware.energy import CMOS45, PJ
from hardware.errors import SpikeflightError

MODEL_VERSION = 1


class EnergyModelError(SpikeflightError):
    """Unknown model name or a bad profile file."""


@dataclass
class PhaseCounts:
    """What one phase of one chunk did (a plain record: the runtime fills in ``seconds``
    once the phase's share of the backend call is known). ``compute`` is False for idle."""

    name: str
    seconds: float = 0.0
    analog_macs: float = 0.0
    ann_macs: float = 0.0
    synops: float = 0.0
    spikes: float = 0.0
    neuron_updates: float = 0.0
    compute: bool = True


class EnergyModel(Protocol):
    name: str
    source: str

    def joules(self, phase: PhaseCounts) -> float | None:
        """Energy of the phase (None where the model has no figure for it)."""
        ...


@dataclass(frozen=True)
class Cmos45Model:
    name: str = CMOS45.name
    source: str = CMOS45.source

    def joules(self, phase: PhaseCounts) -> float | None:
        return (CMOS45.mac_pj * (phase.analog_macs + phase.ann_macs)
                + CMOS45.ac_pj * phase.synops) * PJ


@dataclass(frozen=True)
class Loihi1Model:
    name: str = "loihi1-davies2018"
    source: str = ("Davies et al., IEEE Micro 2018 (pre-silicon, 14 nm): 23.6 pJ/synaptic op, "
                   "81/52 pJ per active/inactive neuron update, 1.7 pJ/spike; host MACs at "
                   "4.6 pJ (Horowitz 2014)")
    synop_pj: float = 23.6
    active_pj: float = 81.0
    inactive_pj: float = 52.0
    spike_pj: float = 1.7

    def joules(self, phase: PhaseCounts) -> float | None:
        if phase.ann_macs:
            return None  # an ANN does not run on a spiking chip
        chip = (self.synop_pj * phase.synops + self.active_pj * phase.spikes
                + self.inactive_pj * (phase.neuron_updates - phase.spikes)
                + self.spike_pj * phase.spikes)
        return (chip + CMOS45.mac_pj * phase.analog_macs) * PJ


@dataclass(frozen=True)
class CpuBoardModel:
    board: str
    active_w: float
    idle_w: float
    source: str

    @property
    def name(self) -> str:
        return f"cpu-board:{self.board}"

    def joules(self, phase: PhaseCounts) -> float | None:
        return (self.active_w if phase.compute else self.idle_w) * phase.seconds


BOARDS = {
    "rpi4": CpuBoardModel(
        "rpi4", active_w=5.4, idle_w=2.2,
        source="Raspberry Pi 4, measured at the USB supply: 5.4 W high load, 2.2 W idle "
               "(chipwired.com/raspberry-pi-power-use, USB tester C); nominal"),
    "jetson-nano-10w": CpuBoardModel(
        "jetson-nano-10w", active_w=10.0, idle_w=0.0,
        source="Jetson Nano nvpmodel mode 0 (MAXN) power budget 10 W as the active figure; "
               "no published idle figure: idle counts 0 W (give a profile file for yours)"),
    "jetson-nano-5w": CpuBoardModel(
        "jetson-nano-5w", active_w=5.0, idle_w=0.0,
        source="Jetson Nano nvpmodel mode 1 power budget 5 W as the active figure; no "
               "published idle figure: idle counts 0 W (give a profile file for yours)"),
}
MODELS: dict[str, EnergyModel] = {"cmos45-horowitz2014": Cmos45Model(),
                                  "loihi1-davies2018": Loihi1Model(),
                                  **{m.name: m for m in BOARDS.values()}}


def load_board_profile(path: Path) -> CpuBoardModel:
    """A ``cpu-board`` profile from YAML or TOML with keys name, active_w, idle_w, source."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise EnergyModelError(f"{path}: cannot read the board profile ({exc.strerror})") from exc
    try:
        if Path(path).suffix.lower() == ".toml":
            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - any parser error is a bad file
        raise EnergyModelError(f"{path}: not a valid profile file ({exc})".splitlines()[0]) \
            from exc
    if not isinstance(data, dict):
        raise EnergyModelError(f"{path}: a profile is a mapping with name, active_w, idle_w")
    missing = [k for k in ("name", "active_w", "idle_w") if k not in data]
    if missing:
        raise EnergyModelError(f"{path}: missing {', '.join(missing)}")
    try:
        active, idle = float(data["active_w"]), float(data["idle_w"])
    except (TypeError, ValueError) as exc:
        raise EnergyModelError(f"{path}: active_w and idle_w must be numbers (W)") from exc
    if active < 0 or idle < 0:
        raise EnergyModelError(f"{path}: active_w and idle_w must be >= 0 W")
    return CpuBoardModel(str(data["name"]), active, idle,
                         str(data.get("source", f"user profile {path}")))


def get_model(spec: str) -> EnergyModel:
    """A model by name (``cmos45-horowitz2014``, ``loihi1-davies2018``,
    ``cpu-board:BOARD``) or ``cpu-board:FILE.yaml|.toml``."""
    if spec in MODELS:
        return MODELS[spec]
    if spec.startswith("cpu-board:") and spec.split(":", 1)[1].endswith((".yaml", ".yml",
                                                                         ".toml")):
        return load_board_profile(Path(spec.split(":", 1)[1]))
    raise EnergyModelError(f"unknown energy model {spec!r}; known: {', '.join(MODELS)} or "
                           "cpu-board:FILE.yaml|.toml")
