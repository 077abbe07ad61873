"""Policy configuration: everything needed to rebuild a policy from its checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from hardware.errors import SpikeflightError
from hardware.sim.action_frame import FRAMES, ActionFrame
from policies.diffusion import PREDICTIONS

KINDS = ("sdp", "sdp-sdli", "ann")


class ConfigError(SpikeflightError):
    """A checkpoint's config that breaks its contract."""


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
    ``state_readout``: add a graded map of the state current to the output,
    ``W_s c`` (``policies/denoiser.py``), computed once per chunk; it gives an x_0
    predictor a response that is smooth in the state beside the spiking core's.
    ``action_frame``: the frame the policy's chunks are in, ``world`` or ``gripper`` (the
    gripper's frame at the start of the chunk; ``hardware/sim/action_frame.py``), with
    ``frame_rot6`` the observation index of ``gripper_rot6`` it is read from.
    ``sdli_ramp_iters``: iterations over which the SDLI strength ramps to its maximum
    (the paper: 5000; ``train bc`` shortens it to half the run when the run is shorter).
    """

    kind: str
    obs_dim: Annotated[int, Field(ge=1)]
    act_dim: Annotated[int, Field(ge=1)]
    chunk: Annotated[int, Field(ge=1, le=64)] = 4
    hidden: Annotated[tuple[Annotated[int, Field(ge=1)], ...], Field(min_length=1)] = (256, 256)
    obs_hidden: Annotated[int, Field(ge=1)] = 128
    emb_dim: Annotated[int, Field(ge=2)] = 32
    micro_steps: Annotated[int, Field(ge=2, le=64)] = 4
    lif_beta: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] = 0.9
    reset: str = "zero"
    diffusion_steps: Annotated[int, Field(ge=1, le=1000)] = 20
    cosine_s: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 0.008
    sdli_sigma: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 0.9
    sdli_beta_max: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] = 0.2
    sdli_ramp_iters: Annotated[int, Field(ge=0)] = 5000
    sdli_invert: bool = False
    prediction: str = "epsilon"
    state_readout: bool = False
    action_frame: str = "world"
    frame_rot6: int = -1
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"policy kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {', '.join(PREDICTIONS)}, "
                             f"got {self.prediction!r}")
        if self.action_frame not in FRAMES:
            raise ValueError(f"action_frame must be one of {', '.join(FRAMES)}, "
                             f"got {self.action_frame!r}")
        if self.action_frame != "world" and not 0 <= self.frame_rot6 <= self.obs_dim - 6:
            raise ValueError(f"frame_rot6 must index 6 observation values (0..{self.obs_dim - 6}), "
                             f"got {self.frame_rot6}")
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
    def frame(self) -> ActionFrame:
        return ActionFrame(self.action_frame, self.frame_rot6)

    @property
    def action_size(self) -> int:
        return self.chunk * self.act_dim

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyConfig:
        """A config read from a checkpoint's ``policy`` section, checked against its
        contract (types and ranges of every field, pydantic); unknown keys are ignored.
        ``ConfigError`` names the first bad field."""
        if d is None:
            raise ConfigError("policy: missing (the checkpoint's config has no policy "
                              "section)")
        if not isinstance(d, dict):
            raise ConfigError(f"policy: expected an object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        try:
            return _ADAPTER.validate_python({k: v for k, v in d.items() if k in known})
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in ("policy", *err["loc"]))
            raise ConfigError(f"{where}: {err['msg']}") from None


_ADAPTER = TypeAdapter(PolicyConfig)  # the contract: PolicyConfig's annotated fields
