"""Tools from Debian's packages that some tests need: a test that lacks one says which, and how to get it."""

from __future__ import annotations

import os
import shutil

import pytest


def need(binary: str, package: str) -> str:
    """The path of ``binary`` (a name on PATH or an absolute path), or skip naming the package that has it."""
    found = binary if os.path.isabs(binary) and os.access(binary, os.X_OK) else shutil.which(binary)
    if not found:
        pytest.skip(f"needs {binary} (apt-get install {package})")
    return found
