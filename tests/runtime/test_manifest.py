"""Correctly signed images with a malformed manifest are refused in one line naming the
field, before anything is unpacked (``runtime/manifest.py``)."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest

from runtime.image import read_image, write_image
from runtime.loader import load_flight_policy
from runtime.manifest import ManifestError
from tests.fixtures.device import SPIKEFLIGHT
from tests.fixtures.resign import resign


def _drop(key: str):
    return lambda m: m.pop(key)


def _set(path: str, value):
    def edit(m: dict) -> None:
        *parents, last = path.split(".")
        node = m
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[int(last) if isinstance(node, list) else last] = value
    return edit


CASES = [
    (_drop("net"), "net: Field required"),
    (_drop("policy"), "policy: Field required"),
    (_set("net.micro_steps", "four"), "net.micro_steps: Input should be a valid integer"),
    (_set("net.beta_lif", 1.5), "net.beta_lif: Input should be less than or equal to 1"),
    (_set("policy.prediction", "x0"), "policy.prediction: Input should be 'epsilon'"),
    (_set("policy.action_frame", "payload"), "policy.action_frame: Input should be 'world'"),
    (lambda m: m["policy"].update(action_frame="gripper", frame_rot6=-1),
     "policy.frame_rot6: -1 does not index 6 of the"),
    (_set("operating_points.0.replan", 0), "operating_points.0.replan: Input should be greater"),
    (_set("operating_points.0.replan", 9), "operating_points.0.replan: 9 actions per chunk"),
    (_set("operating_points.0.energy_j", -1.0), "operating_points.0.energy_j: Input should be"),
    (_set("operating_points.0.candidates", 0), "operating_points.0.candidates: Input should be"),
    (_set("operating_points.0.candidates", 65), "operating_points.0.candidates: Input should be"),
    (_set("core.populations", []), "core.populations: List should have at least 1 item"),
    (_set("core", None), "core: missing (the image has core.npz)"),
    (_set("net", "string"), "net: Input should be a valid dictionary"),
]


@pytest.mark.parametrize(("edit", "why"), CASES)
def test_a_malformed_signed_manifest_is_refused_by_field(tiny_images, tmp_path: Path, edit,
                                                         why: str) -> None:
    data = tiny_images["loihi2"].read_bytes()
    manifest = copy.deepcopy(read_image(data).manifest)
    edit(manifest)
    bad = write_image(tmp_path / "bad.sfimg", resign(data, tiny_images["key"],
                                                     manifest=manifest))
    with pytest.raises(ManifestError, match="^image manifest: ") as exc:
        load_flight_policy(bad, tiny_images["pub"])
    assert why in str(exc.value) and "\n" not in str(exc.value)


def test_the_run_verb_reports_it_in_one_line(tiny_images, tmp_path: Path) -> None:
    data = tiny_images["cpu-fixed"].read_bytes()
    manifest = copy.deepcopy(read_image(data).manifest)
    manifest["operating_points"][0]["replan"] = 0  # once hung the run
    bad = write_image(tmp_path / "bad.sfimg", resign(data, tiny_images["key"],
                                                     manifest=manifest))
    res = subprocess.run([SPIKEFLIGHT, "run", str(bad), "--pubkey", str(tiny_images["pub"]),
                          "-n", "1"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "operating_points.0.replan" in res.stderr and "Traceback" not in res.stderr
