"""Golden-vector self-test: before a device reports an image as running, the backend it
will fly recomputes the image's golden chunks (``selftest.npz``, written by the compiler)
and must reproduce them.

Fixed-point backends (``lava``, ``onnx-fixed``) must match ``x0_fixed`` exactly (their
arithmetic is integer and bit-identical by construction); ``onnx-float`` must match
``x0_float`` within ``FLOAT_TOL`` (float64, normalised action units). Any other outcome
(no vectors, no expectation for the backend, a backend that fails) is a failed self-test
with its reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from runtime.backends import chain_for
from runtime.image import ImageError
from runtime.loader import FlightPolicy

SELFTEST = "selftest.npz"
FLOAT_TOL = 1e-6  # max |x0 difference| for onnx-float, normalised action units


@dataclass
class SelfTestResult:
    passed: bool
    backend: str
    vectors: int
    max_abs_error: float
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fail(reason: str, backend: str = "", vectors: int = 0,
          err: float = float("nan")) -> SelfTestResult:
    return SelfTestResult(False, backend, vectors, err, reason)


def run_selftest(policy: FlightPolicy, backend: str = "auto",
                 on_vector: Callable[[int], None] | None = None) -> SelfTestResult:
    """Recompute every golden chunk on ``backend`` (a ``chain_for`` choice);
    ``on_vector(i)`` is called after each chunk."""
    try:
        g = policy.image.arrays(SELFTEST)
    except (KeyError, ImageError):
        return _fail(f"image has no readable '{SELFTEST}' section")
    try:
        chain = chain_for(policy, backend)
    except Exception as exc:  # noqa: BLE001 - a backend that cannot start fails the test
        return _fail(f"no backend started: {exc}")
    worst, name = 0.0, chain.current.name
    try:
        for i in range(len(g["obs"])):
            x0, _ = chain.chunk(g["obs"][i:i + 1], g["x"][i], g["ks"], g["coef"], g["z"][i])
            name = chain.current.name
            key = "x0_float" if name == "onnx-float" else "x0_fixed"
            if key not in g:
                return _fail(f"no golden '{key}' for backend {name}", name, i)
            err = float(np.max(np.abs(np.asarray(x0, np.float64) - g[key][i])))
            worst = max(worst, err)
            if on_vector is not None:
                on_vector(i)
            exact = name != "onnx-float"
            if (exact and err != 0.0) or err > FLOAT_TOL:
                want = "exactly" if exact else f"within {FLOAT_TOL:g}"
                return _fail(f"golden chunk {i} differs on {name}: max |error| {err:.3g} "
                             f"(must match {want})", name, i + 1, worst)
    except Exception as exc:  # noqa: BLE001 - a failing backend fails the self-test
        return _fail(f"backend {name} failed: {exc}", name)
    finally:
        chain.close()
    return SelfTestResult(True, name, len(g["obs"]), worst)
