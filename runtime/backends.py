"""Backends behind one interface: one call computes a whole action chunk where it can.

``Backend.chunk(obs, x, ks, coef, z) -> (x0, step_spikes)``: the clean normalised chunk
(B, A) from the initial noise ``x`` and the per-step noise ``z`` of an operating point's
denoising steps ``ks`` with sampler coefficients ``coef`` (``runtime.sampler``), and the
spikes each population fired in each step, (n, L) (``None`` for the ANN twin).

- ``onnx-float`` / ``onnx-fixed``: the image's ``chunk.onnx`` / ``chunk_fixed.onnx``, one
  ONNX Runtime call per chunk (a ``Loop`` over the steps). Their large tensors are ONNX
  external data in the sections ``EXTERNAL_DATA`` (the network's own arrays and
  ``tensors.bin``), handed to ONNX Runtime in memory.
- ``lava``: the fixed-point core as live Lava processes (``Loihi2SimCfg`` ``fixed_pt``;
  ``loihi2-hw`` where lava-loihi is present), one Lava run per denoising evaluation; the
  analog host part (encoder, SDLI, input layer, readout, sampler step) in numpy. Its
  arithmetic is bit-identical to ``onnx-fixed``.

``FallbackChain`` runs the first backend that starts; when one fails to start or raises
mid-flight it records a ``fallback`` event, moves to the next and recomputes the same
chunk from the same inputs, so the control loop keeps going and no chunk is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hardware.errors import SpikeflightError
from runtime.loader import FlightPolicy

ChunkResult = tuple[np.ndarray, np.ndarray | None]
BACKENDS = ("lava", "onnx-fixed", "onnx-float")
TENSOR_STORE = "tensors.bin"  # the ONNX graphs' tensors that are none of the network's arrays
# The sections the graphs' ONNX external data may name (``compiler/tensor_store.py``): the
# float weights are arrays of net.npz, the integer ones of core.npz, the rest in the store.
EXTERNAL_DATA = ("net.npz", "core.npz", TENSOR_STORE)
DEFAULT_ORDER = {"loihi2": ("lava", "onnx-fixed", "onnx-float"),
                 "cpu-fixed": ("onnx-fixed",), "cpu": ("onnx-float",)}


class BackendError(SpikeflightError):
    """No backend could run the image (each failure is listed)."""


class Backend:
    name = "backend"

    def start(self) -> None:
        """Acquire resources; raise on failure (the chain then falls back)."""

    def chunk(self, obs: np.ndarray, x: np.ndarray, ks: np.ndarray, coef: np.ndarray,
              z: np.ndarray) -> ChunkResult:
        raise NotImplementedError

    def close(self) -> None:
        """Release resources."""


class OnnxBackend(Backend):
    def __init__(self, policy: FlightPolicy, fixed: bool, threads: int = 1) -> None:
        self.name = "onnx-fixed" if fixed else "onnx-float"
        self.section = "chunk_fixed.onnx" if fixed else "chunk.onnx"
        self.policy, self.threads = policy, threads
        self.spiking = policy.net.spiking
        self.session: Any = None

    def start(self) -> None:
        import onnxruntime as ort

        if self.section not in self.policy.image.sections:
            raise BackendError(f"image has no section '{self.section}' for {self.name}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        sections = self.policy.image.sections
        names = [n for n in EXTERNAL_DATA if n in sections]  # the graphs' weights, in place
        if names:
            blobs = [np.frombuffer(sections[n], np.uint8) for n in names]
            opts.add_external_initializers_from_files_in_memory(names, blobs,
                                                                [len(b) for b in blobs])
        self.session = ort.InferenceSession(sections[self.section], opts,
                                            providers=["CPUExecutionProvider"])

    def chunk(self, obs, x, ks, coef, z) -> ChunkResult:
        out = self.session.run(None, {"obs": np.asarray(obs, np.float64), "x": x, "ks": ks,
                                      "coef": coef, "z": z})
        return out[0], (out[1] if self.spiking else None)

    def close(self) -> None:
        self.session = None


class LavaBackend(Backend):
    """The chip (``loihi2-hw``) where lava-loihi is installed, else its bit-accurate
    simulation (``fixed_pt``)."""

    name = "lava"

    def __init__(self, policy: FlightPolicy, tag: str = "fixed_pt") -> None:
        if policy.core is None:
            raise BackendError("image has no fixed-point core for the Lava backend")
        self.policy, self.tag = policy, tag
        self.lava: Any = None

    def start(self) -> None:
        from runtime.lava_core import LavaCore

        self.lava = LavaCore(self.policy.core, self.tag, n_eval=1)

    def chunk(self, obs, x, ks, coef, z) -> ChunkResult:
        net, core = self.policy.net, self.policy.core
        spikes = np.zeros((len(ks), len(net.widths)))
        x = np.array(x, np.float64)
        state, bias = net.state_current(obs), net.output_bias(obs)  # once per chunk
        for i, k in enumerate(ks):
            kk = np.full(len(x), k, np.int64)
            a_in = core.quantize_input(net.first_layer_current(x, kk, obs, state))  # (T, B, H1)
            counts = []
            for b in range(len(x)):  # Lava runs one evaluation per call
                rasters = self.lava.run(a_in[:, b:b + 1].transpose(1, 0, 2))
                spikes[i] += [r.sum() for r in rasters]
                counts.append(rasters[-1][0].sum(0))
            eps = net.readout(np.asarray(counts, np.float64), bias)
            x = self.policy.sampler.step(x, eps, coef[i], z[i])
        return x, spikes

    def close(self) -> None:
        if self.lava is not None:
            self.lava.stop()
        self.lava = None


def make_backend(name: str, policy: FlightPolicy) -> Backend:
    if name == "lava":
        from runtime.lava_core import HW_TAG, loihi2_hardware_available

        return LavaBackend(policy, HW_TAG if loihi2_hardware_available() else "fixed_pt")
    if name in ("onnx-fixed", "onnx-float"):
        return OnnxBackend(policy, fixed=name == "onnx-fixed")
    raise BackendError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)} or auto)")


EventFn = Callable[..., None]


class FallbackChain:
    """Backends in order of preference; see the module docstring."""

    def __init__(self, backends: list[Backend], on_event: EventFn | None = None) -> None:
        if not backends:
            raise BackendError("no backend to run")
        self.backends = list(backends)
        self.on_event = on_event or (lambda *a, **k: None)
        self.index = -1
        self.failures: list[str] = []
        self._advance("start")

    @property
    def current(self) -> Backend:
        return self.backends[self.index]

    def _advance(self, reason: str) -> None:
        while self.index + 1 < len(self.backends):
            self.index += 1
            backend = self.backends[self.index]
            try:
                backend.start()
                return
            except Exception as exc:  # noqa: BLE001 - any start failure means: next one
                self._failed(backend, f"failed to start: {exc}")
        raise BackendError(f"every backend failed ({reason}): " + "; ".join(self.failures))

    def _failed(self, backend: Backend, what: str) -> None:
        self.failures.append(f"{backend.name} {what}")
        nxt = self.backends[self.index + 1].name if self.index + 1 < len(self.backends) \
            else None
        self.on_event("fallback", severity="warning", backend=backend.name, reason=what,
                      to=nxt)

    def chunk(self, obs, x, ks, coef, z) -> ChunkResult:
        while True:
            backend = self.current
            try:
                return backend.chunk(obs, x, ks, coef, z)
            except Exception as exc:  # noqa: BLE001 - a backend fault must not stop the loop
                self._failed(backend, f"failed mid-flight: {exc}")
                backend.close()
                self._advance("mid-flight")

    def close(self) -> None:
        for b in self.backends:
            b.close()


def chain_for(policy: FlightPolicy, choice: str, on_event: EventFn | None = None
              ) -> FallbackChain:
    """``auto``: the target's order (loihi2: lava -> onnx-fixed -> onnx-float); ``onnx``:
    the same without Lava (host-side runs, profiling); a backend name: that one only."""
    if choice in ("auto", "onnx"):
        order = tuple(n for n in DEFAULT_ORDER[policy.target] if choice == "auto" or n != "lava")
    else:
        order = (choice,)
    return FallbackChain([make_backend(n, policy) for n in order
                          if n != "lava" or policy.core is not None], on_event)
