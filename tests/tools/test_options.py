"""Float options refuse NaN and infinities at parse time (exit 2, naming the option,
nothing written) and keep their ranges."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tools.cli import app
from tools.options import finite


@pytest.mark.parametrize(("args", "option", "why"), [
    (["train", "bc", "--task", "hatch", "--demos", "d.hdf5", "-o", "out", "--lr", "nan"], "--lr",
     "'nan' is not a finite number"),
    (["run", "img.sfimg", "--pubkey", "k.pub", "--budget-w", "inf"], "--budget-w",
     "'inf' is not a finite number"),
    (["train", "rl", "--init", "run", "-o", "out", "--actor-lr", "-inf"], "--actor-lr",
     "'-inf' is not a finite number"),
    (["data", "collect", "--task", "hatch", "-o", "out", "--noise", "-1"], "--noise",
     "-1 is not >= 0.0"),
    (["hil", "run", "x.sfimg", "--min-success", "1.5"], "--min-success", "1.5 is not in 0.0..1.0"),
    (["train", "world-model", "--task", "hatch", "-o", "out", "--lr", "1e400"], "--lr",
     "'1e400' is not a finite number"),
])
def test_bad_numbers_are_refused_before_anything_runs(tmp_path: Path, args: list[str],
                                                      option: str, why: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2
    assert f"Invalid value for '{option}'" in res.output and why in res.output, res.output
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_every_float_option_of_the_app_has_the_finite_parser() -> None:
    from tools.options import _infos

    def walk(t: typer.Typer) -> list:
        infos = [i for c in t.registered_commands for i in _infos(c.callback)]
        return infos + [i for g in t.registered_groups for i in walk(g.typer_instance)]

    infos = walk(app)
    assert len(infos) >= 30
    assert all(i.parser is not None and i.parser.__qualname__.startswith("finite")
               for i in infos)


def test_the_parser_keeps_the_range() -> None:
    parse = finite(0.0, 1.0)
    assert parse("0.25") == 0.25 and parse("1") == 1.0
    for bad in ("nan", "inf", "-0.1", "1.01", "x"):
        with pytest.raises(typer.BadParameter):
            parse(bad)


def test_the_command_line_reports_a_bad_value_in_one_line(tmp_path: Path) -> None:
    import subprocess

    from tests.fixtures.device import SPIKEFLIGHT

    for args, want in ((["train", "bc", "--task", "hatch", "--demos", "d", "-o", "o", "--lr",
                         "nan"], "error: Invalid value for '--lr': 'nan' is not a finite number"),
                       (["run", "x", "--bogus"], "error: No such option: --bogus")):
        res = subprocess.run([SPIKEFLIGHT, *args], capture_output=True, text=True, timeout=60,
                             cwd=tmp_path)
        assert res.returncode == 2 and res.stderr.strip().count("\n") == 0, res.stderr
        assert res.stderr.startswith(want) and "--help" in res.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "option", "why"), [
    (["compile", "run", "-k", "key", "-o", "adir"], "--out", "adir is a directory"),
    (["compile", "run", "-k", "key", "-o", "x.sfimg", "--report-json", "adir"],
     "--report-json", "adir is a directory"),
    (["data", "collect", "--task", "hatch", "-o", "adir"], "--out", "adir is a directory"),
    (["keys", "generate", "-o", "adir"], "--out", "adir is a directory"),
    (["run", "img.sfimg", "--pubkey", "k.pub", "--telemetry", "adir"], "--telemetry",
     "adir is a directory"),
    (["hil", "run", "x.sfimg", "--junit", "adir"], "--junit", "adir is a directory"),
    (["train", "bc", "--task", "hatch", "--demos", "d.hdf5", "-o", "afile"], "--out",
     "afile is not a directory"),
    (["train", "world-model", "--task", "hatch", "-d", "d.hdf5", "-o", "afile/run"], "--out",
     "afile is not a directory"),
    (["world-model", "eval", "run", "-d", "d.hdf5", "--plot", "adir"], "--plot",
     "adir is a directory"),
])
def test_outputs_are_checked_before_anything_runs(tmp_path: Path, args: list[str], option: str,
                                                  why: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("kept\n")
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert f"Invalid value for '{option}'" in res.output or option in res.output, res.output
    assert why in res.output, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"]  # nothing written
    assert (tmp_path / "afile").read_text() == "kept\n" and not any((tmp_path / "adir").iterdir())
