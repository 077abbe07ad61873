"""The golden conformance vectors of an image (section ``golden.npz``), stored compactly.

The compiler records them for its golden evaluations (``CompileOptions.golden``, N = 128
by default); :func:`read_golden` gives them back as the compiler computed them:

- ``obs`` (N, obs_dim) raw observations, ``x`` (N, A) noisy chunks, ``k`` (N,) step
  indices: the inputs of the evaluations;
- ``eps_float`` (N, A): their eps through the ONNX float evaluation graph, and for the
  fixed-point targets ``eps_fixed`` (N, A) through the ONNX fixed-point one;
- fixed-point targets: ``a_in`` (N, T, H1) int32, the graded first-layer inputs fed to
  Lava, and ``spikes1`` .. ``spikesL`` (N, T, H_l) bool, Lava ``fixed_pt``'s spike rasters
  for them (which the ONNX fixed-point core reproduced bit for bit).

Stored: everything but ``a_in``, which :func:`graded_inputs` recomputes exactly from
(obs, x, k) with the image's own network and core (the compiler computes it so too); the
rasters as ``spikes1_bits`` .. (``np.packbits`` along the neurons, uint8); the archive
deflated. Nothing on board reads the section; conformance tools and tests do.
"""

from __future__ import annotations

import numpy as np

from runtime.fixed_point import FixedCore
from runtime.image import arrays_to_bytes
from runtime.loader import FlightPolicy
from runtime.network import FoldedNet

GOLDEN = "golden.npz"
BITS = "_bits"  # suffix of a bit-packed raster


def graded_inputs(net: FoldedNet, core: FixedCore, x: np.ndarray, k: np.ndarray,
                  obs: np.ndarray) -> np.ndarray:
    """Graded inputs a_in (N, T, H1) int32 of evaluations (x, k, obs)."""
    cur = net.first_layer_current(x, k, obs)  # (T, N, H1)
    return core.quantize_input(cur).transpose(1, 0, 2).astype(np.int32)  # < 2^17


def golden_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The section for the golden ``arrays`` (as :func:`read_golden` returns them)."""
    out = {}
    for name, value in arrays.items():
        if name == "a_in":
            continue
        if value.dtype == np.bool_:
            out[name + BITS] = np.packbits(value, axis=-1)
        else:
            out[name] = value
    return arrays_to_bytes(out, compress=True)


def read_golden(policy: FlightPolicy) -> dict[str, np.ndarray]:
    """The golden arrays of ``policy``'s image, unpacked (module docstring)."""
    stored = policy.image.arrays(GOLDEN)
    out = {}
    for name, value in stored.items():
        if name.endswith(BITS):
            name = name[: -len(BITS)]
            width = policy.net.widths[int(name.removeprefix("spikes")) - 1]
            value = np.unpackbits(value, axis=-1, count=width).astype(np.bool_)
        out[name] = value
    if policy.core is not None:
        out["a_in"] = graded_inputs(policy.net, policy.core, out["x"], out["k"], out["obs"])
    return out
