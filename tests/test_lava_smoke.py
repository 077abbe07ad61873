"""Lava really runs: a 2-layer Dense + LIF network under Loihi2SimCfg, fixed and float.

The spike trains are checked against an independent numpy model of the same equations
(Lava's LIF: u <- u(1-du) + a_in; v <- v(1-dv) + u + bias; spike v > vth; reset v to 0;
one step of delay in Dense), so a broken install or a changed semantic fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

from runtime.lava_compat import ensure_lava, patched_source

ensure_lava()

from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402
from lava.proc.dense.process import Dense  # noqa: E402
from lava.proc.io.sink import RingBuffer  # noqa: E402
from lava.proc.lif.process import LIF  # noqa: E402

STEPS = 40
BIAS = np.array([40, 25, 13])
WEIGHTS = np.array([[60, 40, 20], [-30, 80, 50]])
VTH1, VTH2 = 100, 120
DU2, DV2 = 410, 205  # 12-bit decay constants of layer 2 (about 0.1 and 0.05)


def _reference(fixed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Spike rasters (steps x neurons) of both layers, from the documented equations."""
    v1 = np.zeros(3, np.int64 if fixed else float)
    u2 = np.zeros(2, v1.dtype)
    v2 = np.zeros(2, v1.dtype)
    pending = np.zeros(2, v1.dtype)  # Dense output delayed by one step
    s1_log, s2_log = [], []

    def decay(x, d):
        if fixed:
            y = x * (4096 - d)
            return np.sign(y) * (np.abs(y) >> 12)
        return x * (1 - d / 4096)

    shift = 64 if fixed else 1  # fixed point: vth and synaptic input are << 6
    for _ in range(STEPS):
        # layer 1: du = dv = 0 and no input -> u stays 0, v += bias
        v1 = v1 + BIAS * shift
        s1 = v1 > VTH1 * shift
        v1[s1] = 0
        # layer 2 sees last step's weighted spikes
        if fixed:
            u2 = decay(u2, DU2 + 1) + pending * 64
        else:
            u2 = decay(u2, DU2) + pending
        v2 = decay(v2, DV2) + u2
        s2 = v2 > VTH2 * shift
        v2[s2] = 0
        pending = WEIGHTS @ s1.astype(int)
        s1_log.append(s1)
        s2_log.append(s2)
    return np.array(s1_log), np.array(s2_log)


def _run_lava(tag: str) -> tuple[np.ndarray, np.ndarray]:
    fixed = tag == "fixed_pt"
    bias = BIAS * (64 if fixed else 1)
    lif1 = LIF(shape=(3,), bias_mant=bias, vth=VTH1, du=0, dv=0)
    dense = Dense(weights=WEIGHTS)
    du2 = DU2 if fixed else DU2 / 4096
    dv2 = DV2 if fixed else DV2 / 4096
    lif2 = LIF(shape=(2,), vth=VTH2, du=du2, dv=dv2)
    sink1 = RingBuffer(shape=(3,), buffer=STEPS)
    sink2 = RingBuffer(shape=(2,), buffer=STEPS)
    lif1.s_out.connect(dense.s_in)
    dense.a_out.connect(lif2.a_in)
    lif1.s_out.connect(sink1.a_in)
    lif2.s_out.connect(sink2.a_in)
    try:
        lif2.run(condition=RunSteps(num_steps=STEPS), run_cfg=Loihi2SimCfg(select_tag=tag))
        s1, s2 = sink1.data.get(), sink2.data.get()
    finally:
        lif2.stop()
    return s1.T.astype(bool), s2.T.astype(bool)


@pytest.mark.parametrize("tag", ["fixed_pt", "floating_pt"])
def test_dense_lif_network_runs_and_matches_equations(tag: str) -> None:
    s1, s2 = _run_lava(tag)
    r1, r2 = _reference(fixed=tag == "fixed_pt")
    assert s1.sum(axis=0).tolist() == r1.sum(axis=0).tolist()
    assert s2.sum(axis=0).tolist() == r2.sum(axis=0).tolist()
    np.testing.assert_array_equal(s2, r2)
    # the network is really active in both layers, and layer 2 fires only after layer 1
    assert (s1.sum(axis=0) > 0).all() and (s2.sum(axis=0) > 0).all()
    assert s2.any(axis=1).argmax() > s1.any(axis=1).argmax()


def test_patch_rewrites_only_mutable_defaults() -> None:
    src = "@dataclass\nclass A:\n    x: ByteEncoder = ByteEncoder()\n    n: int = 0\n"
    out = patched_source(src)
    assert "x: ByteEncoder = field(default_factory=ByteEncoder)" in out
    assert "n: int = 0" in out
