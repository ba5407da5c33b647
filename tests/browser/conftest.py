"""Browser tests: Playwright for Python driving Debian's Chromium, headless.

The browser is Debian's package (``bash .ci/chromium`` installs it and prints its path),
launched through ``executable_path``; Playwright never downloads one. The path comes from
RELAY_TEST_CHROMIUM, else /usr/bin/chromium. Without it these tests are skipped, except
where RELAY_TEST_REQUIRE_BROWSER=1 (.ci/run sets it): there a missing browser fails.

Why Playwright's async API: pytest-aiohttp runs tests inside a running asyncio loop
(asyncio_mode = auto), and the sync API refuses to start in a thread whose loop is
running. The async API runs in that loop, beside the aiohttp test server the page talks
to, with no thread to hand objects across. The browser is launched once per session, so it
belongs to pytest-asyncio's session loop: the fixtures here and every async test in this
folder run in that loop (``pytest_collection_modifyitems`` below marks them). A test here
therefore starts its servers itself (``async with TestServer(app)``) or through
session-loop fixtures, not through pytest-aiohttp's ``aiohttp_server``, which belongs to a
function's loop.

Screenshots go to tests/browser/screenshots/ (ignored by git), one PNG per test that asks.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from conftest import unavailable
from playwright.async_api import Browser, Page, async_playwright

HERE = Path(__file__).resolve().parent
SCREENSHOTS = HERE / "screenshots"
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run this folder's async tests in the session loop that owns the browser."""
    session_loop = pytest.mark.asyncio(loop_scope="session")
    for item in items:
        if HERE in item.path.parents and pytest_asyncio.is_async_test(item):
            item.add_marker(session_loop, append=False)


def chromium_path() -> Path:
    """Debian's Chromium, or a skip (a failure where a browser is required)."""
    configured = os.environ.get("RELAY_TEST_CHROMIUM")
    path = Path(configured) if configured else DEBIAN_CHROMIUM
    if path.is_file() and os.access(path, os.X_OK):
        return path
    reason = (f"no Chromium at {path}: run `bash .ci/chromium` (installs Debian's chromium) "
              "or set RELAY_TEST_CHROMIUM to a Chromium binary")
    unavailable(reason, "RELAY_TEST_REQUIRE_BROWSER")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the whole session."""
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh page in its own context (no cookies or storage shared between tests)."""
    context = await browser.new_context(viewport={"width": 1024, "height": 720})
    try:
        yield await context.new_page()
    finally:
        await context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Path:
    """Where this test writes its screenshot: screenshots/<test name>.png."""
    SCREENSHOTS.mkdir(exist_ok=True)
    name = request.node.name.replace("/", "_").replace("[", "-").rstrip("]")
    return SCREENSHOTS / f"{name}.png"
