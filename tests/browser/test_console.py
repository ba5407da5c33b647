"""The console in Chromium (SPEC 13): sign in, find an event by send_id, open it, replay it
as an operator and see the new attempt, a viewer's replay refused, no full phone number on
any page; a screenshot of each page at 1280 px and at a phone's width."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import eventually
from playwright.async_api import Browser, Page, expect

from relay.ingest.signature import sign
from relay.runtime import RunningConfig
from relay.web.app import create_app


async def reloading(page: Page, shown: Callable[[], Awaitable[bool]], what: str,
                    within: float = 10.0, every: float = 0.2) -> None:
    """Wait until ``shown()`` holds of the page, loading it again between looks (what it
    shows is made in the background: by the worker, the message follower)."""

    async def look() -> bool:
        if await shown():
            return True
        await page.reload()
        return False

    await eventually(look, within, what, every)

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
KEY = "browser-sms-key"
VIEWER, OPERATOR = "viewer-token-0123456789", "operator-token-0123456789"
PHONE = "13812345678"
PAGES = {"overview": "/console/", "events": "/console/events", "dead": "/console/dead",
         "messages": "/console/messages",
         "quarantine": "/console/quarantine", "destinations": "/console/destinations",
         "routes": "/console/routes?product=sms&event=delivered"}


class Relay:
    """A relay app on a real SQLite file and a service answering 410 until told 200."""

    def __init__(self, base: str, app: web.Application) -> None:
        self.base = base
        self.app = app
        self.answer = 410

    async def push(self, send_id: str) -> None:
        fields = {"events": "delivered", "address": PHONE, "app": "1", "send_id": send_id,
                  "timestamp": str(int(time.time())), "token": f"tok-{send_id}"}
        fields["signature"] = sign(fields["token"], KEY)
        async with aiohttp.ClientSession() as session, \
                session.post(f"{self.base}/subhook/sms", data=fields) as response:
            assert response.status == 200, await response.text()


@pytest_asyncio.fixture(loop_scope="session")
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    holder: dict[str, Relay] = {}

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=holder["relay"].answer, text="service says hello")

    service_app = web.Application()
    service_app.router.add_post("/hook", answer)
    async with TestServer(service_app, host="127.0.0.1") as service:
        config = tmp_path / "relay.yaml"
        config.write_text(
            f"listen: 127.0.0.1:0\nstore: sqlite:///{tmp_path / 'relay.db'}\n"
            f"subhooks:\n  - {{path: /subhook/sms, product: sms, keys: [{KEY}]}}\n"
            "routes:\n  - name: receipts\n    match: {product: sms}\n"
            f"    destinations: [{{name: orders, url: '{service.make_url('/hook')}',"
            " retry: {max_attempts: 1}}]\n"
            "admin:\n  tokens:\n"
            f"    - {{name: vera, token: {VIEWER}, role: viewer}}\n"
            f"    - {{name: otto, token: {OPERATOR}, role: operator}}\n", encoding="utf-8")
        app = create_app(RunningConfig.load(config))
        async with TestServer(app, host="127.0.0.1") as server:
            holder["relay"] = Relay(str(server.make_url("")).rstrip("/"), app)
            yield holder["relay"]


async def sign_in(page: Page, base: str, token: str) -> None:
    await page.goto(f"{base}/console/events")
    await expect(page).to_have_url(re.compile(r".*/console/signin\?next=.*"))
    await page.get_by_label("Token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Events")).to_be_visible()


async def no_full_phone(page: Page) -> None:
    html = await page.content()
    assert PHONE not in html, page.url


async def test_find_open_replay_as_operator_and_see_the_new_attempt(
        relay: Relay, page: Page) -> None:
    await relay.push("order-1")
    await relay.push("order-2")
    await sign_in(page, relay.base, OPERATOR)
    await page.get_by_label("send_id").fill("order-2")
    await page.get_by_role("button", name="Find").click()
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("138****5678")
    await no_full_phone(page)
    await rows.first.get_by_role("link").first.click()  # its id; the second: its send_id
    await expect(page.get_by_role("heading", name="Deliveries")).to_be_visible()
    attempts = page.locator("tr.attempt")
    await expect(attempts).to_have_count(1, timeout=10_000)  # the first attempt: 410
    await expect(attempts.first).to_contain_text("410")
    await expect(attempts.first).to_contain_text("service says hello")
    relay.answer = 200
    await page.get_by_role("button", name="Replay to every destination").click()
    await expect(page.get_by_role("status")).to_contain_text("replayed")
    async def both_attempts() -> bool:  # the worker delivers in the background
        return await page.locator("tr.attempt").count() == 2

    await reloading(page, both_attempts, "the replayed attempt on the event page")
    await expect(page.locator("tr.attempt")).to_have_count(2)
    await expect(page.locator("tr.attempt").nth(1)).to_contain_text("(replay 1)")
    await expect(page.locator("tr.attempt").nth(1)).to_contain_text("200")
    await no_full_phone(page)


async def test_a_viewer_sees_every_page_masked_and_cannot_replay(
        relay: Relay, browser: Browser) -> None:
    await relay.push("order-3")
    shots: list[Any] = []
    for width, height, label in ((1280, 800, "wide"), (390, 844, "phone")):
        context = await browser.new_context(viewport={"width": width, "height": height})
        page = await context.new_page()
        await sign_in(page, relay.base, VIEWER)
        for name, path in PAGES.items():
            response = await page.goto(relay.base + path)
            assert response is not None and response.status == 200, path
            await no_full_phone(page)
            SCREENSHOTS.mkdir(exist_ok=True)
            shot = SCREENSHOTS / f"console-{name}-{label}.png"
            await page.screenshot(path=str(shot), full_page=True)
            shots.append(shot)
        await page.goto(relay.base + "/console/messages")

        async def charted(page: Page = page) -> bool:  # derived within a second of the push
            return bool(await page.locator(".message-chart canvas").count())

        await reloading(page, charted, "the message chart")
        await expect(page.locator(".message-chart canvas")).to_have_count(1)
        await expect(page.locator("article header")).to_contain_text("100.0 % delivered")
        await page.goto(relay.base + "/console/events?send_id=order-3")
        await page.locator("tbody tr a").first.click()
        await expect(page.get_by_role("button", name="Replay to every destination")) \
            .to_have_count(0)
        csrf = await page.locator("input[name=csrf]").first.input_value()
        event_path = page.url.removeprefix(relay.base)
        refused = await page.request.post(relay.base + event_path + "/replay",
                                          form={"csrf": csrf})
        assert refused.status == 403 and "viewer" in await refused.text()
        SCREENSHOTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / f"console-event-{label}.png"),
                              full_page=True)
        await context.close()
    assert all(shot.stat().st_size > 5_000 for shot in shots)


async def test_every_page_works_under_the_content_security_policy(
        relay: Relay, page: Page) -> None:
    """Under the console's CSP no page logs a refused script or style, the charts still
    draw, and "Discard all" still asks before it submits (its confirm is no inline
    handler); dismissed, nothing is discarded."""
    errors: list[str] = []

    def on_console(msg: Any) -> None:
        # the browser asks /favicon.ico of its own accord; the relay has none (404)
        if msg.type == "error" and not msg.location.get("url", "").endswith("/favicon.ico"):
            errors.append(f"{msg.text} ({msg.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    asked: list[str] = []

    async def dismiss(dialog: Any) -> None:
        asked.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", dismiss)
    await relay.push("csp-1")
    await sign_in(page, relay.base, OPERATOR)
    for path in PAGES.values():
        response = await page.goto(relay.base + path)
        assert response is not None and response.status == 200, path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    async def listed() -> bool:  # the worker makes the dead letter in the background
        return bool(await page.get_by_role("button", name=re.compile("Discard all")).count())

    await page.goto(relay.base + "/console/dead")
    await reloading(page, listed, "the dead letter's bulk actions")
    await page.get_by_role("button", name=re.compile("Discard all")).click()
    await expect(page).to_have_url(re.compile(r".*/console/dead$"))
    assert asked and asked[0].startswith("Discard all"), asked
    await expect(page.get_by_role("button", name=re.compile("Discard all"))).to_be_visible()
    assert errors == [], errors
