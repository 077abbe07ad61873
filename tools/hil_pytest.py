"""pytest plugin for hardware-in-the-loop tests (registered as ``spikeflight_hil``).

Options: ``--hil-image`` (signed image to flash and fly; tests that use the fixtures are
skipped without it), ``--hil-pubkey`` (the key the device trusts), ``--hil-backend``,
``--hil-clock``, ``--hil-link``.

Fixtures:

- ``hil_device`` (session): the device, flashed once with ``--hil-image`` and confirmed;
  ``.storage``, ``.pubkey``, ``.target``, ``.task``.
- ``hil_plant``: a function ``run(seeds, scenario=None, **overrides)`` that flies the
  device against the plant for ``seeds`` and returns a ``HilResult`` (``.result``: plant
  episodes and the device report; ``.measurements``: ``{name: value}``; ``.verdicts``:
  ``{name: PASS | MARGINAL | FAIL}``; ``.verdict``). The scenario defaults to the test's
  ``@pytest.mark.hil_scenario("name", **overrides)`` marker, else ``nominal``.

Each run's verdict and measurements become properties of the JUnit test suite
(``record_testsuite_property``, named ``TEST::hil_SCENARIO_MEASUREMENT``), so pytest's own
``--junitxml`` carries them in its default xunit2 format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest


@dataclass
class HilDevice:
    storage: Path
    pubkey: Path
    target: str
    task: str
    backend: str
    clock: str
    link: str


@dataclass
class HilResult:
    result: dict[str, Any]
    measurements: dict[str, Any]
    verdicts: dict[str, str]
    verdict: str


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("spikeflight-hil", "hardware-in-the-loop (spikeflight)")
    group.addoption("--hil-image", help="signed image to flash onto the HIL device")
    group.addoption("--hil-pubkey", help="public key the device trusts")
    group.addoption("--hil-backend", default="auto", help="the device's backend")
    group.addoption("--hil-clock", default="virtual", help="virtual | real")
    group.addoption("--hil-link", default="serial:pty", help="serial:pty | udp:127.0.0.1:0")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hil_scenario(name, **overrides): the HIL fault "
                            "scenario a test's hil_plant runs (spikeflight hil scenarios)")


@pytest.fixture(scope="session")
def hil_device(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> HilDevice:
    from runtime.image import load_image, read_image
    from tools.hil import provision

    opt = request.config.getoption
    image = opt("--hil-image")
    if not image:
        pytest.skip("no --hil-image given")
    if not opt("--hil-pubkey"):
        raise pytest.UsageError("--hil-image needs --hil-pubkey")
    image, pubkey = Path(image), Path(opt("--hil-pubkey"))
    img = read_image(load_image(image))
    storage = tmp_path_factory.mktemp("hil") / "device"
    provision(image, pubkey, storage, img.header.target, opt("--hil-backend"))
    return HilDevice(storage, pubkey, img.header.target, img.manifest["task"],
                     opt("--hil-backend"), opt("--hil-clock"), opt("--hil-link"))


@pytest.fixture
def hil_plant(hil_device: HilDevice, request: pytest.FixtureRequest,
              record_testsuite_property: Callable[[str, object], None]):
    from hardware.hil.scenarios import SCENARIOS, parse_suite
    from tools import hil, hil_measure

    marker = request.node.get_closest_marker("hil_scenario")
    default = (marker.args[0], marker.kwargs) if marker else ("nominal", {})

    def run(seeds: Iterable[int], scenario: str | None = None, min_success: float = 0.0,
            **overrides: Any) -> HilResult:
        name, params = (scenario, overrides) if scenario else (default[0],
                                                                {**default[1], **overrides})
        (sc,) = parse_suite(name)
        sc = replace(SCENARIOS[sc.name], **params)
        res = hil.run_scenario(sc, hil_device.storage, hil_device.pubkey, hil_device.target,
                               hil_device.task, list(seeds), hil_device.clock,
                               hil_device.link, hil_device.backend)
        ms = hil_measure.measure(sc, res, min_success, hil_device.clock)
        verdicts = {m.name: hil_measure.verdict(m) for m in ms}
        overall = hil_measure.worst(list(verdicts.values()))
        prefix = f"{request.node.name}::hil_{sc.name}"
        record_testsuite_property(f"{prefix}_verdict", overall)
        for m in ms:
            record_testsuite_property(f"{prefix}_{m.name}", m.measured_value.value)
        return HilResult(res, {m.name: m.measured_value.value for m in ms}, verdicts, overall)
    return run
