"""Upload throughput of the default policy's loihi2 image to a device agent: median of
five full uploads over UDP on loopback (target >= 1 MB/s) and over a pty (>= 250 kB/s)."""

from __future__ import annotations

import pytest

from tools.flash_bench import upload_throughput


@pytest.mark.parametrize("link", ["udp", "serial"])
def test_upload_throughput(benchmark, flight_image, link: str) -> None:
    image, pub = flight_image
    res = benchmark.pedantic(upload_throughput, args=(image, pub, link, 5), rounds=1,
                             iterations=1)
    benchmark.extra_info.update({"bytes": res["bytes"], "target": res["target"],
                                 "median_kB_per_s": round(res["median_bps"] / 1e3, 1)})
    assert res["median_bps"] >= res["target_bps"], res
