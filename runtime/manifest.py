"""The contract of an image manifest: the fields the runtime reads, their types and
ranges, checked after the signature and before anything is unpacked (``loader.unpack``).

A manifest is signed, so it is what the compiler wrote; but a key may sign what another
tool wrote, and a signed manifest with a missing or malformed field must be refused in
one line naming the field, not fail somewhere inside the runtime. Fields the runtime does
not read are left alone (extra keys allowed). The models are pydantic's (``pydantic``
validates and reports the path of the first bad field).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hardware.errors import SpikeflightError

PREDICTIONS = Literal["epsilon", "sample", "v"]
MAX_CANDIDATES = 64  # candidate chunks per plan a screening operating point may name


class ManifestError(SpikeflightError):
    """A signed manifest that breaks the contract."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # "0.9" is not a number


def _finite(**kw: Any) -> Any:
    return Field(allow_inf_nan=False, **kw)


class PolicyMeta(_Model):
    obs_dim: int = Field(ge=1)
    chunk: int = Field(ge=1, le=64)
    prediction: PREDICTIONS = "epsilon"
    action_frame: Literal["world", "gripper"] = "world"
    frame_rot6: int = Field(default=-1, ge=-1)


class NetScalars(_Model):
    spiking: bool
    beta_lif: float = _finite(ge=0.0, le=1.0)
    micro_steps: int = Field(ge=1, le=64)
    sdli_sigma: float = _finite(gt=0.0)
    sdli_beta: float = _finite(ge=0.0, le=1.0)
    sdli_invert: bool


class Population(_Model):
    du: int = Field(ge=0, le=4095)
    dv: int = Field(ge=0, le=4095)
    groups: list[int] = Field(min_length=1)


class CoreScalars(_Model):
    input_scale: float = _finite(gt=0.0)
    input_max: int = Field(ge=1, lt=1 << 23)
    populations: list[Population] = Field(min_length=1)


class OperatingPoint(_Model):
    name: str = Field(min_length=1)
    ddim_steps: int | None = Field(default=None, ge=1)
    replan: int = Field(ge=1)
    energy_j: float = _finite(ge=0.0)
    success_rate: float | None = _finite(default=None, ge=0.0, le=1.0)
    energy_source: str
    candidates: int = Field(default=1, ge=1, le=MAX_CANDIDATES)


class EnvelopeEntry(_Model):
    start: int = Field(ge=0)
    size: int = Field(ge=1)
    field: str
    limit: float = _finite(gt=0.0)


class WorldModelEntry(_Model):
    horizon: int = Field(ge=1)
    threshold: float = _finite(gt=0.0)
    window: int = Field(ge=1)
    energy_j: float = _finite(ge=0.0)
    envelope: list[EnvelopeEntry]
    error_scale: list[float]


class Manifest(_Model):
    task: str = Field(min_length=1)
    policy: PolicyMeta
    net: NetScalars
    core: CoreScalars | None = None
    operating_points: list[OperatingPoint] = []
    world_model: WorldModelEntry | None = None


def check_manifest(manifest: Any) -> None:
    """Raise ``ManifestError`` naming the first field that breaks the contract."""
    try:
        m = Manifest.model_validate(manifest)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "manifest"
        raise ManifestError(f"image manifest: {where}: {err['msg']}") from None
    pm = m.policy
    if pm.action_frame != "world" and not 0 <= pm.frame_rot6 <= pm.obs_dim - 6:
        raise ManifestError(f"image manifest: policy.frame_rot6: {pm.frame_rot6} does not index "
                            f"6 of the {pm.obs_dim} observation values")
    for i, p in enumerate(m.operating_points):
        if p.replan > m.policy.chunk:
            raise ManifestError(f"image manifest: operating_points.{i}.replan: {p.replan} "
                                f"actions per chunk, the policy's chunk is {m.policy.chunk}")
