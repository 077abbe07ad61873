"""Policy configuration: everything needed to rebuild a policy from its checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from policies.diffusion import PREDICTIONS

KINDS = ("sdp", "sdp-sdli", "ann")


@dataclass
class PolicyConfig:
    """Layout and diffusion settings.

    ``kind``: ``sdp`` (spiking), ``sdp-sdli`` (spiking with SDLI), ``ann`` (ReLU twin).
    ``hidden``: widths of the hidden layers (each a LIF population in the SNN); the paper
    configuration is ``(2048, 2048)``. ``micro_steps``: T, LIF updates per denoising
    evaluation. ``lif_beta``: membrane decay per micro-step (v <- beta v + I).
    ``chunk``: actions predicted and executed per inference (obs horizon 1).
    ``prediction``: what the denoiser outputs, ``epsilon`` (the noise), ``sample`` (the
    clean chunk x_0) or ``v`` (the velocity; ``policies/diffusion.py``).
    ``sdli_ramp_iters``: iterations over which the SDLI strength ramps to its maximum
    (the paper: 5000; ``train bc`` shortens it to half the run when the run is shorter).
    """

    kind: str
    obs_dim: int
    act_dim: int
    chunk: int = 4
    hidden: tuple[int, ...] = (256, 256)
    obs_hidden: int = 128
    emb_dim: int = 32
    micro_steps: int = 4
    lif_beta: float = 0.9
    reset: str = "zero"
    diffusion_steps: int = 20
    cosine_s: float = 0.008
    sdli_sigma: float = 0.9
    sdli_beta_max: float = 0.2
    sdli_ramp_iters: int = 5000
    sdli_invert: bool = False
    prediction: str = "epsilon"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"policy kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {', '.join(PREDICTIONS)}, "
                             f"got {self.prediction!r}")
        if self.reset != "zero":
            raise ValueError("only reset='zero' (Lava's same-step reset to 0) is supported")
        self.hidden = tuple(int(h) for h in self.hidden)

    @property
    def spiking(self) -> bool:
        return self.kind != "ann"

    @property
    def sdli(self) -> bool:
        return self.kind == "sdp-sdli"

    @property
    def action_size(self) -> int:
        return self.chunk * self.act_dim

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
