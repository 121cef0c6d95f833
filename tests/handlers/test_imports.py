"""Handlers get ingest's services through their context, never by importing ingest."""

from __future__ import annotations

import ast
from pathlib import Path

HANDLERS_DIR = Path(__file__).resolve().parents[2] / "handlers"


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            modules.append((node.lineno, node.module))
    return modules


def test_no_handler_module_imports_ingest_not_even_for_types():
    sources = sorted(HANDLERS_DIR.rglob("*.py"))
    assert HANDLERS_DIR / "wandb.py" in sources

    offending = [
        f"{path.relative_to(HANDLERS_DIR.parent)}:{line} imports {module}"
        for path in sources
        for line, module in _imported_modules(path)
        if module == "ingest" or module.startswith("ingest.")
    ]

    assert offending == []
