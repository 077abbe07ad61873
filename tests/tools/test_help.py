"""``--help`` works for every command and sub-command (help texts are rich markup: a
bracket in one can break it)."""

from __future__ import annotations

from typing import Any

import typer
from typer.testing import CliRunner

from tools.cli import app


def _paths(cmd: Any, prefix: list[str]) -> list[list[str]]:
    out = [prefix]
    if hasattr(cmd, "commands"):  # a group
        for name, sub in cmd.commands.items():
            out += _paths(sub, [*prefix, name])
    return out


def test_every_command_prints_its_help() -> None:
    paths = _paths(typer.main.get_command(app), [])
    assert len(paths) > 30
    runner = CliRunner()
    for path in paths:
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, (path, res.output[-500:], res.exception)
        assert "Usage" in res.output, path
