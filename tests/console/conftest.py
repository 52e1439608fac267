"""The console's browser: Debian's headless chromium driven by Playwright (never a downloaded browser),
one per test module (Playwright's sync API keeps an asyncio loop running in this thread while it is
open, so a session-wide browser broke every later ``asyncio.run`` on the same xdist worker); each test
gets its own context and pages that record what the tests check about every page: the requests it
made, page errors and CSP violations."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.console.browser import CHROMIUM_ARGS, Watched
from tests.integration.conftest import pair, started  # noqa: F401  (the fast pair: both started, server1 ACTIVE)
from tests.needs import need


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = need("/usr/bin/chromium", "chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extras)")
    sync_api.expect.set_options(timeout=15_000)  # a loaded machine: expect() polls, so this costs only on failure
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    """``open_page(url, width=1280, height=900) -> Watched``: a new tab (its own sessionStorage) of one context."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB", color_scheme="light")
    context.set_default_timeout(15_000)
    watched: list[Watched] = []

    def opener(url: str, width: int = 1280, height: int = 900) -> Watched:
        page = context.new_page()
        page.set_viewport_size({"width": width, "height": height})
        w = Watched(page)
        page.on("request", lambda r: w.requests.append((r.method, urlsplit(r.url).path)))
        page.on("pageerror", lambda exc: w.problems.append(f"page error: {exc}"))
        page.on("console", lambda m: w.problems.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(url)
        watched.append(w)
        return w

    yield opener
    for w in watched:
        w.check()
    context.close()
