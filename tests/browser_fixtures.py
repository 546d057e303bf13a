"""Shared pieces of the browser tests: one headless Debian Chromium per module (for the module's own
`server` fixture) and a fresh page in its own context.  Import them into a test module:
``from browser_fixtures import browser, new_page  # noqa: F401``."""

from __future__ import annotations

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser(server):
    from oracle_ui import testing

    with playwright_api.sync_playwright() as p:
        b = testing.launch(p)
        yield b
        b.close()


def new_page(browser):
    """A page in a context of its own (its own cookies), at the size the screenshots use."""
    ctx = browser.new_context(viewport={"width": 1360, "height": 960})
    return ctx, ctx.new_page()
