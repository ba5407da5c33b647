"""The console for a morning's work, in Chromium (SPEC 21): the events page follows new
events without a reload, a message has its page, an unknown console path is a console
404 page, and each chart spans the window it shows (an hour, a day) with one minute or an
hour of data; screenshots at 1280 px and 390 px, light and dark."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from playwright.async_api import Browser, Dialog, Page, expect

from browser.test_console import KEY, OPERATOR, Relay, relay, reloading, sign_in
from relay.ingest.signature import sign
from relay.web.state import TRAFFIC
from relay.web.traffic import Totals

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
_ = relay  # the fixture, imported to be used here


async def test_the_events_page_shows_a_new_push_within_5_s_without_a_reload(
        relay: Relay, page: Page) -> None:
    """Open on the events page, a push arrives: its row appears within 5 s; the page was
    not reloaded (a mark set in it before the push is still there)."""
    await sign_in(page, relay.base, OPERATOR)
    await page.evaluate("window.stillHere = true")
    await relay.push("live-1")
    await expect(page.get_by_role("link", name="live-1")).to_be_visible(timeout=5000)
    assert await page.evaluate("window.stillHere === true")


async def test_a_message_has_its_page(relay: Relay, page: Page) -> None:
    """From the events list, a send_id opens the message: its events and, once the
    record follows, its state and the request->delivered latency."""
    await relay.push("msg-page-1")
    await sign_in(page, relay.base, OPERATOR)
    await page.get_by_role("link", name="msg-page-1").click()
    await expect(page.get_by_role("heading", name="Message msg-page-1")).to_be_visible()
    await expect(page.get_by_text("sms/delivered")).to_be_visible()
    await expect(page.locator("[data-state='delivered']").first).to_be_visible(timeout=5000)
    missing = await page.goto(f"{relay.base}/console/messages/no-such-send-id")
    assert missing is not None and missing.status == 404


async def test_an_unknown_console_path_is_a_console_page(relay: Relay, page: Page) -> None:
    """/console/nothing-here answers 404 with the console's page (navigation and a way
    back), not JSON."""
    await sign_in(page, relay.base, OPERATOR)
    response = await page.goto(f"{relay.base}/console/nothing-here")
    assert response is not None and response.status == 404
    assert "text/html" in (await response.all_headers())["content-type"]
    await expect(page.get_by_role("alert")).to_contain_text("no console page")
    await expect(page.get_by_role("link", name="Overview").first).to_be_visible()


async def chart(page: Page, name: str, within: float = 10.0) -> None:
    """Wait for the page to have drawn chart ``name``, reloading (its data may follow a
    moment later). Polled from here: Playwright's own polling evaluates strings, which
    the console's CSP (rightly) refuses."""
    async def drawn() -> bool:
        return bool(await page.evaluate(
            f"!!(window.relayCharts && window.relayCharts[{name!r}])"))

    await reloading(page, drawn, f"chart {name} on {page.url}", within, 0.25)


async def x_range(page: Page, name: str) -> tuple[float, float]:
    got = await page.evaluate(
        f"[window.relayCharts[{name!r}].scales.x.min, window.relayCharts[{name!r}].scales.x.max]")
    return float(got[0]), float(got[1])


async def test_the_overview_chart_spans_the_last_hour(relay: Relay, page: Page) -> None:
    """With one minute of samples and with an hour of them, the time axis runs from an
    hour ago to now (not years around one dot)."""
    app = relay.app
    traffic = app[TRAFFIC]
    now = time.time()
    zero = Totals(0.0, {}, 0.0, 0.0)
    traffic.samples.clear()
    traffic.samples.extend([(now - 60, zero), (now - 40, Totals(5.0, {}, 5.0, 0.0)),
                            (now - 20, Totals(9.0, {"invalid_signature": 1.0}, 9.0, 1.0))])
    await sign_in(page, relay.base, OPERATOR)
    await page.goto(f"{relay.base}/console/")
    await chart(page, "traffic-chart")
    low, high = await x_range(page, "traffic-chart")
    assert abs(low - (now - 3600)) < 120 and abs(high - now) < 120, (low, high, now)
    traffic.samples.clear()
    traffic.samples.extend((now - 3600 + 20 * i, Totals(3.0 * i, {}, 3.0 * i, 0.0))
                           for i in range(181))
    await page.reload()
    await chart(page, "traffic-chart")
    low, high = await x_range(page, "traffic-chart")
    assert abs(low - (now - 3600)) < 120 and abs(high - now) < 120, (low, high, now)
    await page.screenshot(path=str(SCREENSHOTS / "overview-hour.png"), full_page=True)


async def test_the_messages_chart_spans_the_last_day(relay: Relay, page: Page) -> None:
    """With messages of the last minutes only, the hourly chart still runs over 24 h."""
    await relay.push("chart-1")
    await sign_in(page, relay.base, OPERATOR)
    await page.goto(f"{relay.base}/console/messages")
    await chart(page, "sms")
    low, high = await x_range(page, "sms")
    now = time.time()
    assert abs(low - (now - 86400)) < 300 and abs(high - now) < 300, (low, high, now)
    # an hour of data: a message requested an hour ago, in another hourly slot
    for event, at in (("request", int(now) - 3700), ("delivered", int(now) - 3600)):
        fields = {"events": event, "address": "13812345678", "app": "1",
                  "send_id": "chart-hour", "timestamp": str(at), "token": f"tok-hour-{event}"}
        fields["signature"] = sign(fields["token"], KEY)
        async with aiohttp.ClientSession() as session, \
                session.post(f"{relay.base}/subhook/sms", data=fields) as response:
            assert response.status == 200, await response.text()
    deadline = time.monotonic() + 10
    while await page.evaluate(
            "window.relayCharts.sms.data[1].filter(v => v !== null).length") < 2:
        assert time.monotonic() < deadline, "the hour-old message never reached the chart"
        await page.wait_for_timeout(250)
        await page.reload()
        await chart(page, "sms")
    low, high = await x_range(page, "sms")
    assert abs(low - (now - 86400)) < 300 and abs(high - time.time()) < 300, (low, high)


async def test_screenshots_light_and_dark_at_1280_and_390(relay: Relay, browser: Browser) -> None:
    """Each daily page at 1280 px and 390 px, light and dark; in dark mode the charts'
    axes take the page's (light) text colour."""
    await relay.push("shot-1")
    SCREENSHOTS.mkdir(exist_ok=True)
    for scheme in ("light", "dark"):
        for width in (1280, 390):
            context = await browser.new_context(viewport={"width": width, "height": 900},
                                                color_scheme=scheme)
            try:
                page = await context.new_page()
                await sign_in(page, relay.base, OPERATOR)
                for name, path in (("overview", "/console/"), ("events", "/console/events"),
                                   ("message", "/console/messages/shot-1"),
                                   ("destinations", "/console/destinations")):
                    await page.goto(relay.base + path)
                    await page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}-{scheme}.png"),
                                          full_page=True)
                if scheme == "dark":
                    await page.goto(relay.base + "/console/")
                    await chart(page, "traffic-chart")
                    axis, text = await page.evaluate(
                        "[window.relayCharts['traffic-chart'].axes[1].stroke("
                        "window.relayCharts['traffic-chart'], 1),"
                        " getComputedStyle(document.body).color]")
                    assert axis == text, (axis, text)
                    assert _light(text), text
            finally:
                await context.close()


def _light(css: str) -> bool:
    """An rgb() colour brighter than mid-grey."""
    parts = [float(p) for p in css[css.index("(") + 1:css.index(")")].split(",")[:3]]
    return sum(parts) / 3 > 128


async def test_a_filtered_bulk_replay_as_operator(relay: Relay, page: Page) -> None:
    """On the dead letters filtered to one event, "Replay all shown" asks first and then
    replays those rows only; the page comes back filtered, saying what was done."""
    await relay.push("bulk-delivered")
    fields = {"events": "dropped", "address": "13812345678", "app": "1",
              "send_id": "bulk-dropped", "report": "UNDELIV",
              "timestamp": str(int(time.time())), "token": "tok-bulk-dropped"}
    fields["signature"] = sign(fields["token"], KEY)
    async with aiohttp.ClientSession() as session, \
            session.post(f"{relay.base}/subhook/sms", data=fields) as response:
        assert response.status == 200
    await sign_in(page, relay.base, OPERATOR)
    async def both_dead() -> bool:  # the service answers 410
        return bool(await page.get_by_role("link", name="sms/dropped").count()
                    and await page.get_by_role("link", name="sms/delivered").count())

    await page.goto(f"{relay.base}/console/dead")
    await reloading(page, both_dead, "both dead letters")
    await page.get_by_label("event").fill("dropped")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("link", name="sms/delivered")).to_have_count(0)
    asked: list[str] = []

    async def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.once("dialog", lambda dialog: asyncio.ensure_future(accept(dialog)))
    await page.get_by_role("button", name="Replay all 1 shown").click()
    await expect(page.get_by_role("status")).to_contain_text("replayed 1")
    assert asked == ["Replay all 1 shown?"]
    assert "event=dropped" in page.url
    await page.screenshot(path=str(SCREENSHOTS / "dead-filtered-replayed.png"), full_page=True)
