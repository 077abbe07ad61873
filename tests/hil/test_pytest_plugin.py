"""The pytest plugin: teams write HIL tests with the hil_device / hil_plant fixtures and the
hil_scenario marker, and pytest's JUnit output carries the verdicts and measurements."""

from __future__ import annotations

from junitparser import JUnitXml

pytest_plugins = ("pytester",)

TEAM_TESTS = '''
import pytest

@pytest.mark.hil_scenario("corrupt-frames", corrupt_p=0.2)
def test_corrupt_frames_never_reach_the_policy(hil_plant):
    r = hil_plant([10000])
    assert r.measurements["frames_dropped"] > 0
    assert r.verdicts["corrupt_frames_acted_on"] == "PASS"

def test_nominal_success_limit(hil_plant, hil_device):
    assert hil_device.task == "hatch" and hil_device.target == "cpu-fixed"
    r = hil_plant([10000], min_success=1.0)
    assert r.verdicts["success_rate"] == "FAIL" and r.verdict == "FAIL"  # the tiny policy
'''


def test_team_tests_run_with_the_fixtures_and_report_in_junit(pytester, fleet) -> None:
    pytester.makepyfile(test_team=TEAM_TESTS)
    res = pytester.runpytest_subprocess("--hil-image", str(fleet["A"]), "--hil-pubkey",
                                        str(fleet["pub"]), "--hil-backend", "onnx-fixed",
                                        "--junitxml", "team.xml", "-p", "no:cacheprovider")
    res.assert_outcomes(passed=2)
    (suite,) = JUnitXml.fromfile(str(pytester.path / "team.xml"))
    assert {c.name for c in suite} == {"test_corrupt_frames_never_reach_the_policy",
                                       "test_nominal_success_limit"}
    props = {p.name: p.value for p in suite.properties()}
    key = "test_corrupt_frames_never_reach_the_policy::hil_corrupt-frames"
    assert props[f"{key}_verdict"] in ("PASS", "MARGINAL")
    assert int(props[f"{key}_corrupt_frames_acted_on"]) == 0
    assert props["test_nominal_success_limit::hil_nominal_success_rate"] == "0.0"


def test_without_an_image_hil_tests_are_skipped(pytester) -> None:
    pytester.makepyfile(test_team=TEAM_TESTS)
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    res.assert_outcomes(skipped=2)
