"""The layering of docs/architecture.md: which top-level package may import which.

tools -> {compiler, runtime, policies, hardware}; compiler -> {policies, runtime, hardware};
policies -> hardware; runtime -> hardware; and the runtime never imports torch or snntorch.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"hardware", "policies", "compiler", "runtime", "tools"}
ALLOWED = {
    "tools": {"compiler", "runtime", "policies", "hardware"},
    "compiler": {"policies", "runtime", "hardware"},
    "policies": {"hardware"},
    "runtime": {"hardware"},
    "hardware": set(),
}
FORBIDDEN_THIRD_PARTY = {"runtime": {"torch", "snntorch"}, "hardware": {"torch", "snntorch"}}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_follow_the_layering(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        imported = _imports(path)
        for name in imported & OURS - {package} - ALLOWED[package]:
            bad.append(f"{path.relative_to(ROOT)} imports {name}")
        for name in imported & FORBIDDEN_THIRD_PARTY.get(package, set()):
            bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def test_checker_sees_imports(tmp_path: Path) -> None:
    probe = tmp_path / "m.py"
    probe.write_text("import torch.nn\nfrom compiler.passes import x\nfrom . import y\n")
    assert _imports(probe) == {"torch", "compiler"}
