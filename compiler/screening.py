"""Screening operating points (``compile --screen N``): for every operating point of an
image that carries a world model, a twin ``NAME+screenN`` that samples N candidate
chunks per plan in one backend call and flies the first the world model lets through.

Both members of each pair are measured the same way, by flying the assembled image in
the onboard runtime (``runtime.flight``, the target's ONNX graphs, its world-model guard)
on the same ground seeds: candidate 0 of a screened plan carries the noise the
unscreened chunk gets, so where the world model vetoes nothing the two fly the same
episode, and a difference in their success is the screening's doing. The runtime books a
screened plan as N chunks and N + 1 world-model predictions; the manifest keeps each
point's single-chunk ``energy_j`` and its ``candidates``, and the governor ranks all of
them, screened or not, by ground success and then energy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from compiler.closed_loop import GROUND_SEED0


def screening_points(image: bytes, key: Ed25519PrivateKey, candidates: int, episodes: int,
                     on_point: Callable[[str, float], None] | None = None
                     ) -> list[dict[str, Any]]:
    """The operating points of the signed ``image`` (which must carry a world model), each
    followed by its ``+screenN`` twin, with the success rate of ``episodes`` runtime
    flights from ``GROUND_SEED0``; ``on_point(name, success)`` reports each."""
    from hardware.sim.registry import make_env
    from runtime.flight import FlightConfig, fly
    from runtime.image import verify_image
    from runtime.loader import unpack

    policy = unpack(verify_image(image, key.public_key()))
    if policy.manifest.get("world_model") is None:
        raise ValueError("screening needs an image with a world model")
    out: list[dict[str, Any]] = []
    env = make_env(policy.task)
    try:
        for base in policy.operating_points:
            for n in (1, candidates):
                point = {**base, "name": base["name"] + (f"+screen{n}" if n > 1 else ""),
                         "candidates": n}
                manifest = {**policy.manifest, "operating_points": [point]}
                alone = replace(policy, image=replace(policy.image, manifest=manifest))
                summary = fly(alone, env, FlightConfig(backend="onnx", record_phases=False),
                              episodes, GROUND_SEED0)
                point.update(success_rate=summary["success_rate"], ground_episodes=episodes,
                             ground="runtime")
                out.append(point)
                if on_point is not None:
                    on_point(point["name"], point["success_rate"])
    finally:
        env.close()
    return out
