"""One path for every role change: in services/, only the carry-out of a core's plan (services/arbiter/roles.py)
and the restart path write a node's role or epoch, so no role change bypasses the core's invariants."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

# (module, function) -> what it may write, and why that is not a role change past the core
ALLOWED = {
    ("services/arbiter/roles.py", "Roles._do"): {"save_role()", "mem.state ="},  # Persist, Heard: a plan's steps
    ("services/arbiter/roles.py", "Roles._adopt"): {"mem.state ="},  # Adopt: a plan's decision
    ("services/arbiter/heartbeat.py", "Arbiter.__init__"): {"save_node()"},  # restart: rules.restart_state
    ("services/arbiter/memory.py", "Memory.__init__"): {"self.state ="},  # holds the restart state it is given
    ("services/arbiter/journal.py", "Journal.restarted"): {"save_role()", "evolve(role)"},  # the restart's history
    ("services/arbiter/maintenance.py", "Maintenance.set"): {"mem.state ="},  # the R11 flag alone, see below
}


def role_writes(path: Path) -> list[tuple[str, str]]:
    """(function, what) for each place in ``path`` that assigns a ``.state``, saves a role or node record, or
    evolves a state's role, epoch or cause."""
    found: list[tuple[str, str]] = []

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = scope
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{scope}.{child.name}" if scope else child.name
            if isinstance(child, ast.Assign):
                found.extend((name, f"{ast.unparse(t)} =") for t in child.targets
                             if isinstance(t, ast.Attribute) and t.attr == "state")
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                if child.func.attr in ("save_role", "save_node"):
                    found.append((name, f"{child.func.attr}()"))
                changed = sorted({k.arg or "" for k in child.keywords} & {"role", "epoch", "cause"})
                if child.func.attr in ("evolve", "_replace") and changed:
                    found.append((name, f"{child.func.attr}({', '.join(changed)})"))
            visit(child, name)

    visit(ast.parse(path.read_text(), str(path)), "")
    return found


def test_only_the_carry_out_and_the_restart_write_roles() -> None:
    """Every write of a node's role or epoch in services/ is one of the allowed places (0 bypasses)."""
    writes: dict[tuple[str, str], set[str]] = {}
    for path in sorted((ROOT / "services").rglob("*.py")):
        for function, what in role_writes(path):
            writes.setdefault((str(path.relative_to(ROOT)), function), set()).add(what)
    assert writes == ALLOWED


def test_the_maintenance_flag_changes_nothing_but_itself() -> None:
    """The one ``mem.state`` assignment outside roles.py evolves the maintenance flag only."""
    tree = ast.parse((ROOT / "services/arbiter/maintenance.py").read_text())
    values = [n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
              and any(isinstance(t, ast.Attribute) and t.attr == "state" for t in n.targets)]
    assert [ast.unparse(v) for v in values] == ["mem.state.evolve(maintenance=enabled)"]


def test_the_scan_sees_a_bypass(tmp_path: Path) -> None:
    """A role set or saved outside the carry-out is found, wherever it hides."""
    module = tmp_path / "m.py"
    module.write_text("class A:\n    async def f(self):\n"
                      "        self.mem.state = self.mem.state.evolve(role=R, epoch=2)\n"
                      "        self.store.save_role(node_id='x')\n")
    found = sorted(role_writes(module))
    assert found == [("A.f", "evolve(epoch, role)"), ("A.f", "save_role()"), ("A.f", "self.mem.state =")]
