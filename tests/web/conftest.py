"""Headless Chromium (the system's browser) driven by Playwright, signed in to the demo node."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.node.running import Node

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these, Chromium keeps trying to reach Google's hosts, which a closed network
    # refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    return os.environ.get("STRATA_CHROMIUM") or shutil.which("chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Chromium from the system (`chromium`, or `$STRATA_CHROMIUM`); required under CI."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    executable = _chromium()
    if executable is None:
        if os.environ.get("CI"):
            raise RuntimeError("no chromium: .ci/run installs Debian's chromium package")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def page(browser: object, node: Node) -> Iterator[object]:
    """A page signed in as alice.test, of the demo network."""
    context = browser.new_context(viewport={"width": 1100, "height": 860})  # type: ignore[attr-defined]
    context.set_default_timeout(20_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto(node.url("web"))
    opened.fill("#login-identifier", "alice.test")
    opened.fill("#login-password", "strata-demo")
    opened.click("form.login button[type=submit]")
    opened.wait_for_selector("article.post")
    try:
        yield opened
    finally:
        context.close()
    assert not errors, f"errors in the page: {errors}"


@pytest.fixture(scope="session")
def screenshots(request: pytest.FixtureRequest) -> Path | None:
    """Where to save screenshots (`--screenshots DIR`), or None."""
    where = request.config.getoption("--screenshots")
    if where is None:
        return None
    path = Path(where)
    path.mkdir(parents=True, exist_ok=True)
    return path
