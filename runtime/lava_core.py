"""The spiking core as Lava processes (lava-nc 0.10.0), fixed point or float.

Built directly from the compiled parameters: a ``RingBuffer`` source of graded first-layer
inputs feeds population 1 (no Dense, so no delay); population l >= 2 is one ``LIFReset``
process per group (own ``vth`` and incoming ``Dense`` with its own ``weight_exp``; a
Dense per pair of source and target groups), and a sink ``RingBuffer`` records each
process's spikes. Stock processes express our semantics: zero reset in the same step,
``du = 4095`` (fixed) or ``1.0`` (float) so the current forgets itself each step.

Timing (delay compensation): Lava's Dense delivers at step t + 1 what it received at t,
so population l sees micro-step t of an evaluation at Lava step ``l + t`` (1-based)
relative to the evaluation's start. Each evaluation occupies ``R = T + L - 1`` steps
(T input steps, then zero input while the pipeline drains) and every population is reset
(u = v = 0) at the start of its own window: ``reset_offset = l`` with ``reset_interval
= R``. Spikes of population l, micro-step t of evaluation j are recorded at step
``j R + l + t``.

The chip itself (``Loihi2HwCfg``) needs Intel's ``lava-loihi`` extension and a Loihi 2
system; ``run_core(..., "loihi2-hw")`` uses them where present and otherwise raises
``LavaHardwareUnavailable`` saying so. Neither exists here, so that path is untested;
``fixed_pt`` is the bit-accurate model of the chip's arithmetic.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hardware.errors import SpikeflightError
from runtime.fixed_point import FixedCore
from runtime.lava_compat import ensure_lava
from runtime.network import FoldedNet

SIM_TAGS = ("fixed_pt", "floating_pt")
HW_TAG = "loihi2-hw"
STOP_TIMEOUT_S = 1.0  # Lava's own stop, then its processes are killed
_NC_COMPILER = "lava.magma.compiler.subcompilers.nc.ncproc_compiler"  # from lava-loihi


class LavaHardwareUnavailable(SpikeflightError):
    """Loihi 2 hardware execution was asked for where lava-loihi is not installed."""


def loihi2_hardware_available() -> bool:
    """True where Intel's lava-loihi extension (Loihi 2 compiler and runtime) imports."""
    ensure_lava()
    try:
        return importlib.util.find_spec(_NC_COMPILER) is not None
    except ModuleNotFoundError:
        return False


def hardware_status() -> str:
    """One line for operators: can this machine target the chip?"""
    if loihi2_hardware_available():
        return "lava-loihi present: Loihi2HwCfg can target a Loihi 2 chip"
    return ("lava-loihi not installed: no Loihi 2 hardware path here; verified on the "
            "bit-accurate Loihi2SimCfg fixed_pt simulation")


@dataclass
class _Pop:
    """Per-group LIF arguments of one population, in Lava's units."""

    sizes: list[int]
    vth: list[float]
    bias_mant: list[np.ndarray]
    bias_exp: list[np.ndarray]
    du: float
    dv: float


def _fixed_layout(core: FixedCore) -> tuple[list[_Pop], list[np.ndarray], list[list[int]]]:
    pops, exps = [], []
    for p in core.populations:
        sl = p.group_slices()
        pops.append(_Pop(sizes=list(p.groups), vth=[int(p.vth[s][0]) for s in sl],
                         bias_mant=[p.bias_mant[s] for s in sl],
                         bias_exp=[p.bias_exp[s] for s in sl], du=p.du, dv=p.dv))
        exps.append([int(p.weight_exp[s][0]) for s in sl])
    return pops, [w.astype(np.int32) for w in core.weights], exps


def _float_layout(net: FoldedNet) -> tuple[list[_Pop], list[np.ndarray], list[list[int]]]:
    pops = []
    biases = [np.zeros(net.widths[0])] + list(net.hidden_b)
    for n, b in zip(net.widths, biases, strict=True):
        pops.append(_Pop(sizes=[n], vth=[1.0], bias_mant=[b], bias_exp=[np.zeros(n)],
                         du=1.0, dv=1.0 - net.beta_lif))
    return pops, list(net.hidden_w), [[0] for _ in pops]


class LavaCore:
    """The spiking core as live Lava processes, built once and run batch after batch.

    ``run(inputs)`` takes first-layer inputs (N, T, H1) for N evaluations (``n_eval`` fixed
    at construction): graded integers a_1 for ``fixed_pt`` and the chip (with a
    ``FixedCore``), float currents I_1 for ``floating_pt`` (with a ``FoldedNet``). It
    returns the spike rasters (N, T, H_l) of every population, delays compensated. The
    processes start on the first call and stay up (state is reset by the schedule) until
    ``stop()``; later calls only load new inputs, so a runtime pays Lava's start-up once.
    """

    def __init__(self, params: FixedCore | FoldedNet, tag: str, n_eval: int = 1) -> None:
        if tag not in (*SIM_TAGS, HW_TAG):
            raise ValueError(f"tag must be one of {(*SIM_TAGS, HW_TAG)}, got {tag!r}")
        if tag == HW_TAG and not loihi2_hardware_available():
            raise LavaHardwareUnavailable(hardware_status())
        ensure_lava()
        self.tag, self.n_eval = tag, n_eval
        self.fixed = tag != "floating_pt"
        self.pops, self.weights, self.exps = (_fixed_layout(params) if self.fixed
                                              else _float_layout(params))
        self._source = None
        self._sinks: list[list] = []
        self._started = False

    def _build(self, steps: int, width: int, data: np.ndarray) -> None:
        from lava.proc.dense.process import Dense
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source
        from lava.proc.lif.process import LIFReset

        period = self.period(steps)
        self._source = Source(data=data)
        procs: list[list] = []
        for li, pop in enumerate(self.pops):
            procs.append([LIFReset(shape=(size,), vth=pop.vth[g], du=pop.du, dv=pop.dv,
                                   bias_mant=pop.bias_mant[g], bias_exp=pop.bias_exp[g],
                                   reset_interval=period, reset_offset=li + 1)
                          for g, size in enumerate(pop.sizes)])
        self._source.s_out.connect(procs[0][0].a_in)
        for li, w in enumerate(self.weights):
            src_edges = np.cumsum([0, *self.pops[li].sizes])
            dst_edges = np.cumsum([0, *self.pops[li + 1].sizes])
            for gd, dst in enumerate(procs[li + 1]):
                for gs, src in enumerate(procs[li]):
                    block = w[dst_edges[gd]:dst_edges[gd + 1],
                              src_edges[gs]:src_edges[gs + 1]]
                    kw = ({"weight_exp": self.exps[li + 1][gd], "num_weight_bits": 8}
                          if self.fixed else {})
                    dense = Dense(weights=block, **kw)
                    src.s_out.connect(dense.s_in)
                    dense.a_out.connect(dst.a_in)
        self._sinks = [[Sink(shape=(size,), buffer=self.n_eval * period)
                        for size in pop.sizes] for pop in self.pops]
        for group, sink_group in zip(procs, self._sinks, strict=True):
            for proc, sink in zip(group, sink_group, strict=True):
                proc.s_out.connect(sink.a_in)

    def period(self, steps: int) -> int:
        """Lava steps per evaluation: T input steps, then L - 1 for the pipeline to drain."""
        return steps + len(self.pops) - 1

    def run(self, inputs: np.ndarray) -> list[np.ndarray]:
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg

        n_eval, steps, width = inputs.shape
        if n_eval != self.n_eval:
            raise ValueError(f"this core runs {self.n_eval} evaluations per call, got {n_eval}")
        period = self.period(steps)
        data = np.zeros((width, n_eval * period), np.int32 if self.fixed else np.float64)
        for j in range(n_eval):
            data[:, j * period:j * period + steps] = inputs[j].T
        if self._source is None:
            self._build(steps, width, data)
        else:
            self._source.data.set(data)
        cfg = Loihi2HwCfg() if self.tag == HW_TAG else Loihi2SimCfg(select_tag=self.tag)
        self._started = True
        self._source.run(condition=RunSteps(num_steps=n_eval * period), run_cfg=cfg)
        recorded = [np.concatenate([s.data.get() for s in group], axis=0)
                    for group in self._sinks]
        rasters = []
        for li, rec in enumerate(recorded):
            out = np.zeros((n_eval, steps, rec.shape[0]), bool)
            for j in range(n_eval):
                start = j * period + li  # column of step j R + (li + 1) + 0, 0-based
                out[j] = rec[:, start:start + steps].T != 0
            rasters.append(out)
        return rasters

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the Lava processes: Lava's own stop, given ``timeout_s``. A stop after an
        interrupted run (SIGINT/SIGTERM landing inside ``run``) can wait for ever on
        processes that never answer; those are killed, and Lava's stop then completes and
        frees its shared memory, so a signal ends a command within seconds and leaves no
        process behind."""
        if self._source is not None and self._started:
            stopper = threading.Thread(target=_quietly, args=(self._source.stop,),
                                       daemon=True)
            stopper.start()
            stopper.join(timeout_s)
            if stopper.is_alive():
                for proc in self._actors():
                    if proc.is_alive():
                        proc.kill()
                stopper.join(timeout_s)
        self._source, self._started = None, False

    def _actors(self) -> list[multiprocessing.process.BaseProcess]:
        """Lava's worker processes (not its shared-memory manager)."""
        runtime = getattr(self._source, "runtime", None)
        infra = getattr(runtime, "_messaging_infrastructure", None)
        return list(getattr(infra, "actors", []))


def _quietly(fn: Callable[[], object]) -> None:
    """``fn()``; a failure of Lava's stop after its processes were killed is expected."""
    with contextlib.suppress(Exception):  # the processes are gone either way
        fn()


def run_core(params: FixedCore | FoldedNet, inputs: np.ndarray, tag: str) -> list[np.ndarray]:
    """Run evaluations (N, T, H1) back to back in one Lava run (see ``LavaCore``)."""
    core = LavaCore(params, tag, n_eval=inputs.shape[0])
    try:
        return core.run(inputs)
    finally:
        core.stop()
