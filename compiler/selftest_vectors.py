"""Golden chunk vectors for the device's self-test (``selftest.npz``, read by
``runtime/selftest.py``).

A few whole action chunks, computed at compile time by the image's own chunk graphs:
inputs ``obs`` (n, obs_dim), initial noise ``x`` (n, 1, A), per-step noise ``z``
(n, steps, 1, A) and the schedule ``ks`` (steps,) with its coefficient rows ``coef``
(steps, 5) of a short DDIM operating point; outputs ``x0_fixed`` (``chunk_fixed.onnx``,
bit-identical to Lava) and ``x0_float`` (``chunk.onnx``), each (n, 1, A), where the
image has that graph. The observations are golden states the calibration recorded.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from compiler.calibrate import Calibration
from runtime.sampler import Sampler

SELFTEST_VECTORS = 4  # chunks per self-test
SELFTEST_DDIM_STEPS = 5  # denoising steps per self-test chunk
GRAPHS = {"chunk_fixed.onnx": "x0_fixed", "chunk.onnx": "x0_float"}


def selftest_vectors(graphs: dict[str, bytes], sampler: Sampler, golden: Calibration,
                     seed: int, count: int = SELFTEST_VECTORS,
                     ddim_steps: int = SELFTEST_DDIM_STEPS) -> dict[str, np.ndarray]:
    """The self-test arrays for the chunk graphs among ``graphs`` (serialized ONNX with
    their tensors inline, i.e. before ``share_tensors``)."""
    ks, coef = sampler.coefficients(min(ddim_steps, sampler.steps))
    idx = np.linspace(0, len(golden) - 1, count).round().astype(int)
    obs = golden.obs[idx].astype(np.float64)
    rng = np.random.default_rng(seed)
    size = golden.x.shape[1]
    x, z = Sampler.draw(rng, count, size, len(ks))
    out = {"obs": obs, "x": x[:, None], "z": z.transpose(1, 0, 2)[:, :, None],
           "ks": ks, "coef": coef}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    for graph, key in GRAPHS.items():
        if graph not in graphs:
            continue
        sess = ort.InferenceSession(graphs[graph], opts, providers=["CPUExecutionProvider"])
        out[key] = np.stack([sess.run(None, {"obs": obs[i:i + 1], "x": out["x"][i], "ks": ks,
                                             "coef": coef, "z": out["z"][i]})[0]
                             for i in range(count)])
    return out
