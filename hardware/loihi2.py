"""Loihi 2 target limits the compiler checks.

Bit widths follow Lava's bit-accurate process models (lava-nc 0.10.0: ``PyLifModelBitAcc``,
bit-accurate ``Dense``). Per-core compartment and fan-in figures are Loihi 1's (Davies et
al., IEEE Micro 2018), used for Loihi 2 until better ones are published; cores per chip:
128 (Loihi 2).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Loihi2Limits:
    name: str = "loihi2"
    weight_bits: int = 8  # mantissa, mixed sign: even values in [-256, 254]
    weight_exp_min: int = 0  # we keep exponents >= 0 so shifts are exact in every backend
    weight_exp_max: int = 7
    vth_bits: int = 17  # unsigned; effective threshold vth << 6
    uv_bits: int = 24  # signed u and v
    decay_bits: int = 12  # du, dv in 0..4095
    bias_mant_bits: int = 13  # signed
    bias_exp_max: int = 7  # 3-bit exponent
    graded_input_bits: int = 18  # a_in << 6 must stay inside the 24-bit current
    max_delay: int = 62
    compartments_per_core: int = 1024
    fan_in_per_core: int = 4096
    cores_per_chip: int = 128
    max_zeroed_weights: float = 0.5  # more nonzero weights quantising to 0: too precise
    max_leak_error: float = 0.01  # relative error of the effective leak beta

    @property
    def weight_max(self) -> int:
        return (1 << (self.weight_bits - 1)) - 2  # 254: the LSB is dropped in mixed mode

    @property
    def vth_max(self) -> int:
        return (1 << self.vth_bits) - 1

    @property
    def bias_mant_max(self) -> int:
        return (1 << (self.bias_mant_bits - 1)) - 1

    @property
    def uv_max(self) -> int:
        return (1 << (self.uv_bits - 1)) - 1


LOIHI2 = Loihi2Limits()
