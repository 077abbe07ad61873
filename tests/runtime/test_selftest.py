"""The golden-vector self-test passes on every backend an image carries and fails, with
its reason, when the golden chunks were altered before signing."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.image import arrays_to_bytes, load_image, read_image, write_image
from runtime.loader import load_flight_policy
from runtime.selftest import SELFTEST, run_selftest
from tests.fixtures.resign import resign


@pytest.mark.parametrize(("target", "backend"), [
    ("loihi2", "auto"), ("loihi2", "onnx-fixed"), ("loihi2", "onnx-float"),
    ("cpu-fixed", "auto"), ("cpu", "auto")])
def test_selftest_passes_on_each_backend(tiny_images, target: str, backend: str) -> None:
    res = run_selftest(load_flight_policy(tiny_images[target], tiny_images["pub"]), backend)
    want = {"auto": {"loihi2": "lava", "cpu-fixed": "onnx-fixed", "cpu": "onnx-float"}[target]}
    assert res.passed and res.vectors == 4, res
    assert res.backend == want.get(backend, backend) and res.max_abs_error == 0.0


@pytest.mark.parametrize(("target", "key", "delta"), [("cpu-fixed", "x0_fixed", 1e-9),
                                                      ("cpu", "x0_float", 1e-3)])
def test_selftest_fails_on_altered_golden_chunks(tiny_images, tmp_path, target: str,
                                                 key: str, delta: float) -> None:
    data = load_image(tiny_images[target])
    golden = read_image(data).arrays(SELFTEST)
    golden[key][2, 0, 3] += delta
    bad = write_image(tmp_path / "bad.sfimg", resign(data, tiny_images["key"], sections={
        SELFTEST: arrays_to_bytes(golden)}))
    res = run_selftest(load_flight_policy(bad, tiny_images["pub"]))
    assert not res.passed and res.vectors == 3
    assert res.reason.startswith("golden chunk 2 differs on ") and "max |error|" in res.reason
    assert np.isclose(res.max_abs_error, delta)


def test_selftest_fails_without_a_backend_for_the_image(tiny_images) -> None:
    res = run_selftest(load_flight_policy(tiny_images["cpu"], tiny_images["pub"]), "onnx-fixed")
    assert not res.passed and "no section 'chunk_fixed.onnx'" in res.reason
