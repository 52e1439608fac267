"""What the console's browser tests share: how chromium is launched, a page and what it did, screenshots."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
# HS_CONSOLE_SHOTS=docs: the failover test also saves docs/console.png and docs/console-failover.png.
SHOTS = os.environ.get("HS_CONSOLE_SHOTS", "")


@dataclass
class Watched:
    """A page and what it did: ``requests`` (method, path), ``problems`` (page errors, CSP violations)."""

    page: Any
    requests: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def check(self) -> None:
        assert self.problems == [], f"the page reported problems: {self.problems}"


def shot(page: Any, name: str) -> None:
    """Save a screenshot into ``$HS_CONSOLE_SHOTS`` when it is set (``make console-shots``)."""
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)
