"""The store has one door: its package, which exports everything the outside uses, lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import store

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = ("ingest", "web", "handlers")


INSIDE = {path.stem for path in (ROOT / "store").iterdir() if path.suffix == ".py" or path.is_dir()} - {
    "__init__"
}


def _reaches_inside(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "store":
        # store.inbox.claim works too, once anything imported store.inbox.
        return [f"store.{node.attr}"] if node.attr in INSIDE else []
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.startswith("store.")]
    if isinstance(node, ast.ImportFrom) and node.module:
        if node.module.startswith("store."):
            return [node.module]
        if node.module == "store":
            # `from store import inbox` is the module inbox all the same.
            return [f"store.{alias.name}" for alias in node.names if alias.name in INSIDE]
    return []


def test_ingest_web_and_handlers_import_only_the_store_package() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno} imports {inner}"
        for package in OUTSIDE
        for path in sorted((ROOT / package).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        for inner in _reaches_inside(node)
    ]
    assert found == []


def test_every_exported_name_resolves_and_is_declared_for_type_checkers() -> None:
    tree = ast.parse((ROOT / "store" / "__init__.py").read_text())
    declared = {
        alias.asname or alias.name: (node.module.removeprefix("store."), alias.name)
        for block in tree.body
        if isinstance(block, ast.If)
        for node in block.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    assert declared == store._API
    assert sorted(store.__all__) == sorted(store._API)
    for name in store.__all__:
        assert getattr(store, name) is not None, name


def test_importing_the_store_loads_neither_sqlalchemy_nor_rdkit() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, store; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.split()
    assert [name for name in loaded if name.split(".")[0] in ("sqlalchemy", "rdkit")] == []
