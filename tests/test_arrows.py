"""The arrows point one way: the shared package imports no service, the services no command line, and
nothing that ships imports the lab, the bench or the tests (STYLE.md, ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = ("hotstandby", "services", "cli", "lab", "bench", "tests")
FORBIDDEN = {
    "hotstandby": {"services", "cli", "lab", "bench", "tests"},
    "services": {"cli", "lab", "bench", "tests"},
    "cli": {"lab", "bench", "tests"},
    "lab": {"bench", "tests"},
    "bench": {"tests"},
}


def imported_packages(path: Path) -> set[tuple[int, str]]:
    """(line, top-level package) of every import in ``path``, lazy imports inside functions included."""
    found: set[tuple[int, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name.split(".")[0]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.lineno, node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    """No module of ``package`` imports a package above it or beside it in the wrong direction."""
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {top}"
             for path in sorted((ROOT / package).rglob("*.py"))
             for line, top in sorted(imported_packages(path)) if top in FORBIDDEN[package]]
    assert wrong == []


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    """An import inside a function counts as much as one at the top of the module."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from services.node import serve\n    import tests.x\n")
    assert {(2, "services"), (3, "tests")} == imported_packages(module)
