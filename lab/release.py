"""An earlier release of hotstandby, unpacked from this repository's own history, run beside this one.

Operators upgrade a pair one node at a time, so for a while a node of this release talks to a node of
the previous one. ``unpack(commit, dest)`` writes that release's tree (``git archive``); ``spawner(tree)``
is a ``NodeProcess`` spawn function that runs it as that release ran: ``python -m hotstandby node`` with
the tree as working directory (its own packages come first on ``sys.path``), in this interpreter, whose
environment also holds the earlier release's dependencies (the dev extras keep sqlmodel for it).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from lab.watch import ROOT, Spawn

# main before the compact exchange (issue 15): it speaks exchange protocol 1 only.
PREVIOUS = "21094b3"


def unavailable(commit: str = PREVIOUS) -> str | None:
    """Why the release cannot be unpacked here (a skip reason), or None."""
    if shutil.which("git") is None:
        return "git not installed"
    r = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
    return None if r.returncode == 0 else f"commit {commit} is not in this repository's history"


def unpack(commit: str, dest: Path) -> Path:
    """The tree of ``commit`` under ``dest`` (created), as ``git archive`` writes it."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def spawner(tree: Path) -> Spawn:
    """Spawn ``hotstandby node`` of the release in ``tree`` instead of this checkout's."""

    def spawn(cmd: list[str], env: dict[str, str], log: Path, wrapper: Sequence[str]) -> subprocess.Popen[bytes]:
        assert cmd[-1] == "node", cmd
        with open(log, "ab") as out:
            return subprocess.Popen([*wrapper, sys.executable, "-m", "hotstandby", "node"], env=env, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=tree, start_new_session=True)

    return spawn
