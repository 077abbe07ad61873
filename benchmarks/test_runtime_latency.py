"""Per-chunk latency of the default policy, one thread, same run: runtime ONNX chunk graphs
against snnTorch eager (target: ONNX float >= 10x faster), ANN twin in ONNX for reference."""

from __future__ import annotations

from policies.checkpoint import shipped
from tools.latency import chunk_latency

SHIPPED = shipped("hatch")


def test_onnx_chunk_latency_vs_snntorch_eager(benchmark) -> None:
    res = benchmark.pedantic(chunk_latency, args=(SHIPPED, 200), rounds=1, iterations=1)
    benchmark.extra_info.update({f"{k}_{s}": round(v, 3) for k, d in res.items()
                                 for s, v in d.items()})
    ratio = res["snntorch_eager"]["median_ms"] / res["onnx_float"]["median_ms"]
    benchmark.extra_info["speedup_onnx_float"] = round(ratio, 2)
    assert ratio >= 10, res
