"""A missing tool skips a test on a developer's machine and fails it under CI=true; make installs the tools."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.needs import need, need_file

ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_tool_skips_and_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without CI a test needing an absent tool or file is skipped, and the reason says which package to install."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install hs-no-such-package"):
        need("hs-no-such-tool-here", "hs-no-such-package")
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install hs-no-such-package"):
        need_file("/nonexistent/libhs.so", "hs-no-such-package")


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_under_ci_a_missing_tool_fails_the_run(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    """With CI=true the same calls fail the test, so a green CI run means nothing was left out."""
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="CI=true: a missing tool fails the run"):
        need("hs-no-such-tool-here", "hs-no-such-package")
    with pytest.raises(pytest.fail.Exception, match="apt-get install hs-no-such-package"):
        need_file("/nonexistent/libhs.so", "hs-no-such-package")


def test_a_present_tool_is_found_even_in_sbin(monkeypatch: pytest.MonkeyPatch) -> None:
    """need() gives the tool's path; sbin tools are found without sbin on PATH (a non-root user's PATH)."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert need("sh", "dash").endswith("/sh")
    assert need("ip", "iproute2") in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip")


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
