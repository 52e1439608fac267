"""The README's measured figures are exactly what the results files beside it say (bench/readme.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import readme
from bench.compare import table as before_after
from bench.report import client_visible, goals

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_matches_the_results_files() -> None:
    """Regenerating README.md from bench/results/ changes nothing: no figure was typed in by hand."""
    text = (ROOT / "README.md").read_text()
    assert readme.render(text) == text, "README.md is stale: run python -m bench.readme"


def test_every_measured_section_of_the_readme_is_generated() -> None:
    """Each generator has its section in the README (a figure cannot hide outside one)."""
    text = (ROOT / "README.md").read_text()
    assert {m.group("name") for m in readme.SECTION.finditer(text)} == set(readme.SECTIONS)


def test_missing_files_and_figures_read_no_data(tmp_path: Path) -> None:
    """No results file, or a file without a figure, says "no data" and never a number."""
    text = "\n".join(f"<!-- BEGIN results:{n} -->\n<!-- END results:{n} -->" for n in readme.SECTIONS)
    empty = readme.render(text, tmp_path)
    assert "no data" in empty and "missing" in empty
    (tmp_path / "latest.json").write_text(json.dumps({"profiles": {"aggressive": {"switchover": {
        "checks": {"failed_requests": 0, "requests": 0, "max_gap_s": None, "switches": 3}}}},
        "switchover": {"checks": {"failed_requests": 0, "requests": 0, "max_gap_s": None, "switches": 3}}}))
    hold = readme.hold(tmp_path)
    assert "longest gap no data" in hold
    assert "0.0" not in hold


def test_an_unknown_section_is_an_error() -> None:
    """A section the generator does not know fails loudly instead of being left as it was."""
    with pytest.raises(KeyError, match="results:nonsense"):
        readme.render("<!-- BEGIN results:nonsense -->\nx\n<!-- END results:nonsense -->\n")


def test_a_goal_without_data_is_never_met() -> None:
    """A total outage (no switchover figures, no VIP samples) reads "no data", not "yes"."""
    res = {"profiles": {"sprint": {"death_to_vip_api_s": {"median": None}}}, "keepalived": {},
           "switchover": {"api": {"failed_requests": None}}}
    rows = {g["goal"]: g["met"] for g in goals(res)}
    assert rows["planned switchovers (aggressive, 50 req/s), arbiters tell HAProxy: 0 failed requests"] == "no data"
    assert rows["sprint: death → VIP median, ours told / keepalived's VIP ≤ 0.8"] == "no data"
    assert "yes" not in rows.values()
    assert client_visible(res)["sprint"]["ratio_vip_api"] is None


def test_before_and_after_read_an_old_results_file_as_far_as_it_goes() -> None:
    """An old bench file (one HAProxy, no warm CTI) fills what it has and says no data for the rest."""
    old = {"machine": {"commit": "abc1234", "load_at_start": [0.8]},
           "profiles": {"aggressive": {"switchover": {"failed_requests": 2, "requests": 310}},
                        "sprint": {"promotion_to_vip_s": {"p95": 0.216}}}}
    rows = {cells[0]: cells[1:] for line in before_after(old, old).splitlines()[2:]
            if (cells := [c.strip() for c in line.strip("|").split("|")])}
    assert rows["failed requests over 3 planned switchovers at 50 req/s (aggressive), checks only"][:2] == [
        "2 of 310", "2 of 310"]
    assert rows["the same, the arbiters telling HAProxy (HS_LB_RUNTIME_API)"][:2] == ["no data", "no data"]
    assert rows["promotion → VIP (sprint, p95, s), checks only"][0] == "0.216"
