"""Load a policy image for flight: verify it, then unpack what the backends need.

Nothing is unpacked before ``verify_image`` has checked the SHA-256 of every region and
the Ed25519 signature against the configured public key; a failure raises ``ImageError``
naming what failed, and nothing runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from hardware.energy import Layout
from hardware.sim.action_frame import ActionFrame
from runtime.fixed_point import FixedCore
from runtime.image import Image, load_image, verify_image
from runtime.keys import load_public_key
from runtime.manifest import ManifestError, check_manifest
from runtime.network import FoldedNet
from runtime.sampler import Sampler, unnormalise


@dataclass
class FlightPolicy:
    """A verified image, unpacked: the float network, the fixed-point core (if any), the
    schedule, the action range and the operating points fixed at compile time."""

    image: Image
    net: FoldedNet
    core: FixedCore | None
    sampler: Sampler
    act_lo: np.ndarray
    act_hi: np.ndarray

    @property
    def manifest(self) -> dict[str, Any]:
        return self.image.manifest

    @property
    def target(self) -> str:
        return self.image.header.target

    @property
    def chunk(self) -> int:
        return int(self.manifest["policy"]["chunk"])

    @cached_property
    def frame(self) -> ActionFrame:
        """The frame the network's chunks are in (``hardware/sim/action_frame.py``; read
        once: ``chunk_actions`` runs every chunk)."""
        meta = self.manifest["policy"]
        return ActionFrame(meta.get("action_frame", "world"), int(meta.get("frame_rot6", -1)))

    def chunk_actions(self, obs: np.ndarray, x0: np.ndarray) -> np.ndarray:
        """Raw world-frame actions (B, chunk, act_dim) of normalised chunks ``x0``
        (B, chunk * act_dim) planned on ``obs`` (B, obs_dim)."""
        return self.frame.to_world(obs, unnormalise(x0, self.act_lo, self.act_hi, self.chunk))

    @property
    def task(self) -> str:
        return str(self.manifest["task"])

    @property
    def operating_points(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("operating_points", []))

    def layout(self) -> Layout:
        """Operation counts of this network (for the energy models)."""
        meta = self.manifest["policy"]
        return Layout(obs_dim=int(meta["obs_dim"]), obs_hidden=self.net.enc_w1.shape[0],
                      widths=tuple(self.net.widths), action_size=self.net.action_size,
                      micro_steps=self.net.micro_steps, sdli=self.net.sdli_w is not None,
                      state_readout=self.net.state_w is not None)


def load_flight_policy(image_path: str | Path, pubkey_path: str | Path) -> FlightPolicy:
    """Verify ``image_path`` against the public key at ``pubkey_path`` and unpack it."""
    return unpack(verify_image(load_image(image_path), load_public_key(pubkey_path)))


def unpack(image: Image) -> FlightPolicy:
    """Unpack a verified ``image`` (from ``verify_image``) for the backends, after checking
    its manifest against the contract (``runtime.manifest``)."""
    check_manifest(image.manifest)
    if "core.npz" in image.sections and image.manifest.get("core") is None:
        raise ManifestError("image manifest: core: missing (the image has core.npz)")
    arrays = image.arrays("net.npz")
    net = FoldedNet.from_arrays(arrays, image.manifest["net"])
    core = None
    if "core.npz" in image.sections:
        core = FixedCore.from_arrays(image.arrays("core.npz"), image.manifest["core"])
    return FlightPolicy(image=image, net=net, core=core,
                        sampler=Sampler(arrays["betas"], arrays["alpha_bars"],
                                        image.manifest["policy"].get("prediction", "epsilon")),
                        act_lo=arrays["act_lo"], act_hi=arrays["act_hi"])
