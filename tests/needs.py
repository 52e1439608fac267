"""Tools from Debian's packages that some tests need: a test that lacks one says which, and how to get it.

Every make target installs its packages when run as root (.ci/packages, .ci/ensure-packages). Elsewhere
a missing tool skips the tests that need it, naming the package; under ``CI=true`` it fails them instead,
so that a green CI run always means the whole suite ran. Every such skip goes through ``missing()``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

SBIN = ("/usr/sbin", "/sbin")  # not on a normal user's PATH, where haproxy and iptables live


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(reason: str) -> NoReturn:
    """Skip the test for ``reason`` (a missing tool and its package); under CI=true, fail it."""
    if under_ci():
        pytest.fail(f"{reason}; CI=true: a missing tool fails the run (make test installs it as root)",
                    pytrace=False)
    pytest.skip(reason)


def find(binary: str) -> str | None:
    """``binary`` as an absolute path, on PATH, or in an sbin directory; None when nowhere."""
    if os.path.isabs(binary):
        return binary if os.access(binary, os.X_OK) else None
    found = shutil.which(binary)
    if found:
        return found
    return next((str(p) for d in SBIN if os.access(p := Path(d) / binary, os.X_OK)), None)


def need(binary: str, package: str) -> str:
    """The path of ``binary`` (a name or an absolute path), or ``missing()`` naming the package that has it."""
    found = find(binary)
    if not found:
        missing(f"needs {binary} (apt-get install {package})")
    return found


def need_file(path: str | Path, package: str) -> Path:
    """A file a package installs (a library, a data file), or ``missing()`` naming the package."""
    p = Path(path)
    if not p.exists():
        missing(f"needs {p} (apt-get install {package})")
    return p
