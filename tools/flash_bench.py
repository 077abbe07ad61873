"""Upload throughput of the device link: a real device agent process (``spikeflight
device serve``) on an empty storage, the image uploaded to slot 1 ``repeats`` times
(slot 1 erased in between, so each upload is a full one), bytes per second of each
upload as the client sees it (first chunk to last acknowledgement)."""

from __future__ import annotations

import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from smpclient.requests.image_management import ImageErase, ImageStatesRead

from runtime.image import load_image, read_image
from tools import smp_client

TARGETS_BPS = {"udp": 1e6, "serial": 250e3}  # issue 11: >= 1 MB/s UDP, >= 250 kB/s pty


def _start_agent(storage: Path, pubkey: Path, target: str, link: str) -> tuple[Any, str]:
    cmd = [str(Path(sys.executable).parent / "spikeflight"), "device", "serve", "--link", link,
           "--storage", str(storage), "--pubkey", str(pubkey), "--target", target]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"device agent did not start: {line!r}")
    return proc, line.split("listening on ", 1)[1].strip()


def upload_throughput(image: Path, pubkey: Path, link: str, repeats: int = 5
                      ) -> dict[str, Any]:
    """Throughput of ``repeats`` full uploads of ``image`` over ``link`` (``udp`` or
    ``serial``): bytes/s of each, the median, and the image's size and target."""
    data = load_image(image)
    target = read_image(data).header.target
    spec = "udp:127.0.0.1:0" if link == "udp" else "serial:pty"
    with tempfile.TemporaryDirectory() as tmp:
        proc, address = _start_agent(Path(tmp) / "device", pubkey, target, spec)
        try:
            async def job(client: Any) -> list[float]:
                rates = []
                for _ in range(repeats):
                    await smp_client.request(client, ImageErase(), "erase")
                    t0 = time.perf_counter()
                    async for _off in client.upload(data):
                        pass
                    rates.append(len(data) / (time.perf_counter() - t0))
                    await smp_client.request(client, ImageStatesRead(), "image state read")
                return rates
            rates = smp_client.run(address, 10.0, job)
        finally:
            proc.kill()
            proc.wait()
    return {"link": link, "bytes": len(data), "target": target, "bytes_per_s": rates,
            "median_bps": statistics.median(rates), "target_bps": TARGETS_BPS[link]}
