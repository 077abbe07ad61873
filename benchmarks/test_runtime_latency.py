"""Per-chunk latency of the default policy, one thread, same run: runtime ONNX chunk graphs
against snnTorch eager (target: ONNX float >= 10x faster) and against the numpy bound of
the chunk's matrix-vector products (targets: ONNX float <= 1.0 ms or within 2x of the
bound, ONNX fixed point <= 1.5 ms or within 2x), the ANN twin in ONNX for reference, and
the per-sample latency of batched calls (B = 1, 4, 16, 64)."""

from __future__ import annotations

from policies.checkpoint import shipped
from tools.latency import chunk_latency

SHIPPED = shipped("hatch")


def test_onnx_chunk_latency_vs_snntorch_eager_and_the_bound(benchmark) -> None:
    res = benchmark.pedantic(chunk_latency, args=(SHIPPED, 200, (1, 4, 16, 64)), rounds=1,
                             iterations=1)
    benchmark.extra_info.update({f"{k}_{s}": round(v, 3) for k, d in res.items()
                                 for s, v in d.items()})
    ratio = res["snntorch_eager"]["median_ms"] / res["onnx_float"]["median_ms"]
    bound = res["matvec"]["median_ms"]
    benchmark.extra_info["speedup_onnx_float"] = round(ratio, 2)
    assert ratio >= 10, res
    for name, target_ms in (("onnx_float", 1.0), ("onnx_fixed", 1.5)):
        ms = res[name]["median_ms"]
        benchmark.extra_info[f"{name}_x_bound"] = round(ms / bound, 2)
        assert ms <= target_ms or ms <= 2 * bound, (name, ms, bound)
