"""Fixtures of the fault lab: one lab per session, a fresh pair per test, a row of the chaos table per test.

The lab (namespaces, bridge) is built once per session after removing what killed runs left
behind, and torn down at the end whatever happened. Each test gets fresh node processes, data
dirs and infra services, and leaves the network healed and its filesystems unmounted.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import pytest

from lab import netns
from lab.labpair import LabPair
from tests.lab import report
from tests.lab.matrix import Row
from tests.needs import missing


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" or (rep.when == "setup" and rep.outcome != "passed"):
        item.stash[_OUTCOME] = rep.outcome


_OUTCOME = pytest.StashKey[str]()
KEEP = os.environ.get("HS_LAB_KEEP", "") not in ("", "0", "false")  # keep every test's logs in run/lab-logs


def pytest_sessionstart(session: pytest.Session) -> None:
    path = report.rows_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    rows = report.load(report.rows_path())
    if rows:
        terminalreporter.section("chaos matrix")
        terminalreporter.write_line(report.table(rows))
        terminalreporter.write_line(f"(rows in {report.rows_path()})")


@pytest.fixture(scope="session")
def lab() -> Iterator[netns.Lab]:
    """The session's lab hosts; skipped with the reason when this machine cannot build one."""
    why = netns.unavailable()
    if why:
        missing(why)
    netns.cleanup_stale()
    with netns.lab_run() as built:
        yield built


@pytest.fixture
def make_pair(lab: netns.Lab, request: pytest.FixtureRequest) -> Iterator[Callable[..., LabPair]]:
    """A factory of pairs on the lab hosts (infra services started, nodes not yet)."""
    made: list[LabPair] = []
    root = lab.base / f"{request.node.name[:60]}-{time.monotonic_ns()}"

    def make(**kwargs: Any) -> LabPair:
        pair = LabPair(lab, root / str(len(made)), **kwargs)
        pair.root.mkdir(parents=True, exist_ok=True)
        made.append(pair)
        pair.start_infra()
        return pair

    try:
        yield make
    finally:
        for pair in made:
            pair.close()
        if request.node.stash.get(_OUTCOME, "failed") != "passed" or KEEP:
            # The evidence outlives the run's directory: node output, fault-tolerant logs, manager.
            keep = report.ROOT / "run" / "lab-logs" / request.node.name[:80]
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(root, keep, ignore=shutil.ignore_patterns("*.db*", "filler.bin"), dirs_exist_ok=True)
        for p in list(lab.procs):
            netns.stop_process(p)
            lab.procs.remove(p)
        for host in netns.HOSTS:  # a straggler (a node's child, a forked wrapper) must not outlive its test
            lab.clear_host(host)
        for mnt in [m for m in lab.mounts if root in m.parents]:
            netns.run(["umount", "-l", str(mnt)], check=False)
            lab.mounts.remove(mnt)
        lab.heal()


@pytest.fixture
def row(request: pytest.FixtureRequest) -> Iterator[Callable[[str], Row]]:
    """``row("fault name")`` starts this test's line of the chaos table; it is written at teardown."""
    rows: list[Row] = []

    def start(fault: str, **kwargs: Any) -> Row:
        r = Row(fault, **kwargs)
        rows.append(r)
        return r

    yield start
    outcome = request.node.stash.get(_OUTCOME, "failed")
    # pytest_sessionstart above runs only when tests/lab is named on the command line (make chaos);
    # from the repository root (make test, a fresh clone) run/ may not exist yet.
    report.rows_path().parent.mkdir(parents=True, exist_ok=True)
    with open(report.rows_path(), "a") as fh:
        for r in rows:
            r.outcome = outcome
            fh.write(json.dumps(asdict(r)) + "\n")
