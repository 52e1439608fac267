"""A missing tool skips a test on a developer's machine and fails it under CI=true; make installs the tools."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = '''
from tests.needs import need, need_file

def test_needs_a_tool():
    need("hs-no-such-tool-here", "hs-no-such-package")

def test_needs_a_file():
    need_file("/nonexistent/libhs.so", "hs-no-such-package")
'''


def _run_probe(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"PYTHONPATH": str(ROOT)}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "-p", "no:schemathesis", str(tmp_path / "test_probe.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_missing_tool_skips_and_names_its_package(tmp_path: Path) -> None:
    """Without CI a test needing an absent tool is skipped, and the reason says which package to install."""
    r = _run_probe(tmp_path, None)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 skipped" in r.stdout
    assert "apt-get install hs-no-such-package" in r.stdout


def test_under_ci_a_missing_tool_fails_the_run(tmp_path: Path) -> None:
    """With CI=true the same tests fail, so a green CI run means nothing was left out."""
    r = _run_probe(tmp_path, "true")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "2 failed" in r.stdout
    assert "CI=true: a missing tool fails the run" in r.stdout


def test_every_skip_for_a_tool_goes_through_needs() -> None:
    """No test skips for a missing package by itself: each goes through tests.needs (which fails under CI)."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.name in ("needs.py", "test_needs.py"):
            continue
        text = path.read_text()
        for m in re.finditer(r"(pytest\.skip\(|skipif\()[^\n]*(\n[^\n]*){0,2}", text):
            if re.search(r"apt-get install|not installed|is missing|needs '", m.group(0)):
                offenders.append(f"{path.relative_to(ROOT)}: {m.group(0).splitlines()[0].strip()}")
    assert offenders == []


def test_every_make_target_installs_from_the_one_list() -> None:
    """Each purpose make and .ci/run name is a line of .ci/packages, and nothing else calls apt-get."""
    listed = {line.split(":", 1)[0] for line in (ROOT / ".ci" / "packages").read_text().splitlines()
              if line and not line.startswith("#")}
    makefile = (ROOT / "Makefile").read_text()
    used = set(re.findall(r"\$\(call packages,([\w-]+)\)", makefile))
    used |= {p for words in re.findall(r"ensure-packages --for \"[^\"]*\" ([\w -]+)", makefile + (
        ROOT / ".ci" / "run").read_text()) for p in words.split()}
    assert {"base", "run", "test", "chaos", "bench", "fuzz", "sim", "tools"} <= used
    assert used <= listed
    for path in (ROOT / "Makefile", ROOT / ".ci" / "run"):
        assert not re.search(r"apt-get( -\S+)* (install|update)", path.read_text()), path
