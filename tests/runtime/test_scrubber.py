"""The weight-memory scrubber: upsets change what the backend computes, a scrub finds and
repairs every one within its period, the plausibility check holds implausible chunks."""

from __future__ import annotations

import numpy as np

from runtime.backends import chain_for
from runtime.loader import load_flight_policy
from runtime.scrubber import BLOCK_BYTES, WeightMemory


def _setup(tiny_images):
    policy = load_flight_policy(tiny_images["cpu-fixed"], tiny_images["pub"])
    chain = chain_for(policy, "onnx-fixed")
    restarts = []

    def restart() -> None:
        restarts.append(1)
        chain.current.close()
        chain.current.start()

    ks, coef = policy.sampler.coefficients(5)
    x, z = policy.sampler.draw(np.random.default_rng(3), 2, policy.net.action_size, len(ks))
    obs = np.random.default_rng(4).uniform(-1, 1, (2, policy.net.enc_w1.shape[1]))

    def run() -> np.ndarray:
        return chain.chunk(obs, x, ks, coef, z)[0]
    return policy, WeightMemory(policy, restart, scrub_ticks=4), run, restarts


def test_an_upset_changes_the_computation_and_the_scrub_restores_it(tiny_images) -> None:
    policy, mem, run, restarts = _setup(tiny_images)
    clean = run()
    sec = mem.ram["net.npz"]
    at = bytes(sec).find(policy.net.enc_w1.astype("<f8").tobytes()[:64])
    assert at > 0
    mem.ram["net.npz"][at + 7] ^= 0x40  # the exponent's top bit of the first encoder weight
    mem._load()
    assert not np.array_equal(run(), clean)
    assert mem.scrub() == 1
    assert bytes(mem.ram["net.npz"]) == mem.flash["net.npz"]
    np.testing.assert_array_equal(run(), clean)  # bit for bit after the repair
    assert len(restarts) == 2


def test_every_injected_upset_is_found_within_one_scrub_period(tiny_images) -> None:
    _, mem, _, _ = _setup(tiny_images)
    for _ in range(6):
        mem.inject()
        mem.tick += 1
    assert any(mem.ram[n] != bytearray(mem.flash[n]) for n in mem.names)
    for _ in range(4):
        mem.on_tick()
    assert all(u.detected_tick is not None for u in mem.c.upsets)
    assert all(u.detected_tick - u.tick <= 2 * mem.scrub_ticks for u in mem.c.upsets)
    assert all(mem.ram[n] == bytearray(mem.flash[n]) for n in mem.names)
    blocks = {(u.section, u.bit // 8 // BLOCK_BYTES) for u in mem.c.upsets}
    assert mem.c.blocks_repaired == len(blocks)
    d = mem.c.to_dict()
    assert d["upsets_injected"] == d["upsets_detected"] == 6


def test_implausible_chunks_are_refused_and_trigger_a_scrub(tiny_images) -> None:
    _, mem, _, _ = _setup(tiny_images)
    ok = np.zeros((4, 7))
    assert mem.plausible(ok, [0.2, 0.1])
    assert not mem.plausible(np.full((4, 7), np.nan), [0.2, 0.1])
    assert not mem.plausible(ok, [1.0, 0.1])
    assert mem.c.implausible_chunks == 2 and mem.c.scrubs == 2
