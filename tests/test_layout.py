"""dvc.yaml tells the truth: every stage declares every package file its script can run.

The imports of each stage script are followed statically through ``src/crescendai`` — top-level
imports and imports inside functions alike, ``from crescendai.x import y`` counted as both the
module ``x`` and, when it is one, the submodule ``x.y``; importing a module runs its package
``__init__`` files too. A reachable file that no declared dep covers (the file itself or a folder
above it) fails the test, naming the stage and the file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of the ``crescendai`` modules that ``path`` imports anywhere in its body."""
    tree = ast.parse(path.read_text(), filename=str(path))
    inside = path.is_relative_to(SRC)
    package = ".".join(path.relative_to(SRC).with_suffix("").parts) if inside else ""
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m.split(".")[0] == "crescendai" and _module_file(m)}


def reachable_files(script: Path) -> set[Path]:
    """Every package file that running ``script`` can execute (package ``__init__``s included)."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for name in _imported_modules(todo.pop()):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__, …
                f = _module_file(".".join(parts[:i]))
                if f is not None and f not in seen:
                    seen.add(f)
                    todo.append(f)
    return seen


def _stages() -> dict[str, dict]:
    return YAML(typ="safe", pure=True).load((ROOT / "dvc.yaml").read_text())["stages"]


def undeclared(stage: dict) -> list[str]:
    """Package files the stage's script reaches that none of its deps covers."""
    script = ROOT / stage["cmd"].split()[1]
    deps = [ROOT / d for d in stage["deps"]]
    missing = [f for f in reachable_files(script) if not any(f == d or f.is_relative_to(d) for d in deps)]
    return sorted(str(f.relative_to(ROOT)) for f in missing)


@pytest.mark.parametrize("name", sorted(_stages()))
def test_every_reachable_package_file_is_a_declared_dep(name: str) -> None:
    stage = _stages()[name]
    assert stage["cmd"].split()[:2][0] == "python" and stage["cmd"].split()[1] in stage["deps"], name
    missing = undeclared(stage)
    assert not missing, f"stage {name} runs {', '.join(missing)} but dvc.yaml does not list it under deps"


def test_the_check_fails_when_a_dep_is_removed() -> None:
    stage = dict(_stages()["finetune_ssl"])
    stage["deps"] = [d for d in stage["deps"] if d != "src/crescendai/learn"]
    missing = undeclared(stage)
    assert "src/crescendai/learn/loop.py" in missing


def test_function_local_imports_are_followed(tmp_path: Path) -> None:
    script = tmp_path / "stage.py"
    script.write_text("def main():\n    from crescendai.core import config\n")
    assert SRC / "crescendai" / "core" / "config.py" in reachable_files(script)


FLOORS: tuple[str, ...] = ("core", "data", "synth", "model", "learn", "evaluate", "tutor")
"""The package's floors, lowest first; a module imports only from its own floor or lower ones."""


def _floor(path: Path) -> int | None:
    parts = path.relative_to(SRC / "crescendai").parts
    return FLOORS.index(parts[0]) if len(parts) > 1 and parts[0] in FLOORS else None


def test_floors_import_only_downwards() -> None:
    upward = []
    for path in sorted((SRC / "crescendai").rglob("*.py")):
        mine = _floor(path)
        if mine is None:
            continue
        for name in _imported_modules(path):
            other = _floor(_module_file(name))
            if other is not None and other > mine:
                upward.append(f"{path.relative_to(SRC)} imports {name}")
    assert not upward, "upward imports: " + "; ".join(upward)


def test_every_module_sits_on_a_floor() -> None:
    top = sorted(p.name for p in (SRC / "crescendai").glob("*.py"))
    assert top == ["__init__.py", "cli.py"], top
    assert sorted(p.name for p in (SRC / "crescendai").iterdir() if p.is_dir() and p.name != "__pycache__") \
        == sorted(FLOORS)
