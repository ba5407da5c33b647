"""The console over HTTP (SPEC 13): sign-in, the session cookie's flags, CSRF, roles, and
every page rendered without a full phone number. Browser tests: tests/browser/."""

from __future__ import annotations

import re
import time
from typing import Any

from conftest import Client, MakeRelay, MakeSink, signed, wait_settled

VIEWER, OPERATOR = "viewer-token-0123456789", "operator-token-0123456789"
TOKENS = ("admin:\n  tokens:\n"
          f"    - {{name: vera, token: {VIEWER}, role: viewer}}\n"
          f"    - {{name: otto, token: {OPERATOR}, role: operator}}\n")
PAGES = ("/console/", "/console/events", "/console/dead", "/console/quarantine",
         "/console/messages", "/console/destinations", "/console/routes")


async def sign_in(client: Client, token: str) -> Any:
    return await client.post("/console/signin", data={"token": token, "next": "/console/"},
                             allow_redirects=False)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, html[:500]
    return match.group(1)


async def relay_with_dead_letter(make_relay: MakeRelay, make_sink: MakeSink) -> Client:
    sink = await make_sink(script=[410])
    client = await make_relay(
        f'  - {{name: all, destinations: [{{name: svc, url: "{sink.url}"}}]}}', TOKENS)
    fields = signed("sms", {"events": "delivered", "address": "13812345678", "app": 1,
                            "send_id": "order-7", "timestamp": int(time.time())})
    assert (await client.post("/subhook/sms", data=fields)).status == 200
    await wait_settled(client)
    return client


async def test_pages_need_a_session_and_static_files_hold_no_data(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """Without a session every page redirects to the sign-in page (htmx requests get 401)
    and every action is 401; the sign-in page and the vendored files need none."""
    client = await relay_with_dead_letter(make_relay, make_sink)
    for path in (*PAGES, "/console/events/1"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"].startswith("/console/signin?next=")
        assert (await client.get(path, headers={"HX-Request": "true"},
                                 allow_redirects=False)).status == 401
    for path in ("/console/events/1/replay", "/console/dead/discard"):
        assert (await client.post(path, data={"all": "1"})).status == 401
    signin = await client.get("/console/signin")
    assert signin.status == 200 and "13812345678" not in await signin.text()
    script = await client.get(re.findall(r'src="([^"]+htmx[^"]+)"', await signin.text())[0])
    assert script.status == 200 and "order-7" not in await script.text()


async def test_sign_in_sets_a_strict_http_only_expiring_cookie(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """A good token: 303 to the page asked for, with the session cookie HttpOnly,
    SameSite=Strict, limited to /console/ and expiring; a wrong token: 401, no cookie."""
    client = await relay_with_dead_letter(make_relay, make_sink)
    wrong = await sign_in(client, "not-a-token-at-all")
    assert wrong.status == 401 and "relay_console" not in wrong.headers.get("Set-Cookie", "")
    response = await sign_in(client, VIEWER)
    assert (response.status, response.headers["Location"]) == (303, "/console/")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console/" in cookie
    assert re.search(r"Max-Age=\d+", cookie) and "Secure" not in cookie  # plain HTTP here
    page = await client.get("/console/")
    assert page.status == 200 and "Sign out vera" in await page.text()
    assert page.headers["Cache-Control"] == "no-store"
    outside = await client.post("/console/signin", data={"token": VIEWER,
                                                         "next": "https://evil.example/"},
                                allow_redirects=False)
    assert outside.headers["Location"] == "/console/"


async def test_every_action_needs_the_csrf_token_and_an_operator(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """A POST without the session's CSRF token is 403 for anyone; a viewer's action with
    it is 403 too; the operator's replays the dead letter."""
    client = await relay_with_dead_letter(make_relay, make_sink)
    await sign_in(client, VIEWER)
    csrf = csrf_of(await (await client.get("/console/dead")).text())
    assert (await client.post("/console/dead/replay", data={"all": "1"})).status == 403
    viewer = await client.post("/console/dead/replay", data={"all": "1", "csrf": csrf})
    assert viewer.status == 403 and "viewer" in await viewer.text()
    client.session.cookie_jar.clear()
    await sign_in(client, OPERATOR)
    page = await (await client.get("/console/dead")).text()
    assert "Replay all 1" in page
    wrong = await client.post("/console/dead/replay", data={"all": "1", "csrf": csrf})
    assert wrong.status == 403  # the viewer's session's token is not this session's
    done = await client.post("/console/dead/replay",
                             data={"all": "1", "csrf": csrf_of(page)}, allow_redirects=False)
    assert (done.status, done.headers["Location"]) == (303, "/console/dead?done=replayed+1")


async def test_every_page_renders_with_contacts_masked(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """Each page answers 200 to a viewer and shows the phone number masked only."""
    client = await relay_with_dead_letter(make_relay, make_sink)
    await sign_in(client, VIEWER)
    listed = await (await client.get("/console/events?send_id=order-7")).text()
    event_path = re.findall(r'href="(/console/events/\d+)"', listed)[0]
    for path in (*PAGES, event_path, "/console/routes?product=sms&event=delivered"):
        response = await client.get(path)
        text = await response.text()
        assert response.status == 200, path
        assert "13812345678" not in text, path
    assert "138****5678" in listed
    assert "410" in await (await client.get(event_path)).text()
    explained = await (await client.get("/console/routes?product=sms&event=delivered")).text()
    assert "route <strong>all</strong>: <mark>matches</mark>" in explained
    bad = await (await client.get("/console/events?state=lost")).text()
    assert "state: &#39;lost&#39; is not one of" in bad


async def test_sign_in_attempts_are_limited_per_address(make_relay: MakeRelay) -> None:
    """The 11th attempt within five minutes is 429 with Retry-After, even with a good token."""
    client = await make_relay("  []", TOKENS)
    for _ in range(10):
        assert (await sign_in(client, "guess-0123456789abcdef")).status == 401
    limited = await sign_in(client, OPERATOR)
    assert limited.status == 429 and int(limited.headers["Retry-After"]) > 0


async def test_console_is_off_without_tokens(make_relay: MakeRelay) -> None:
    client = await make_relay("  []")
    assert (await client.get("/console/signin")).status == 404


async def test_admin_api_takes_the_tokens_with_their_roles(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """A viewer's bearer token reads the admin API and is 403 on a replay; an operator's
    replays; a token of neither is 401."""
    client = await relay_with_dead_letter(make_relay, make_sink)

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    listed = await client.get("/admin/dead", headers=bearer(VIEWER))
    assert listed.status == 200 and len((await listed.json())["dead_letters"]) == 1
    refused = await client.post("/admin/dead/replay", json={"all": True}, headers=bearer(VIEWER))
    assert refused.status == 403 and "viewer" in (await refused.json())["problems"][0]
    assert (await client.get("/admin/dead", headers=bearer("x" * 24))).status == 401
    done = await client.post("/admin/dead/replay", json={"all": True}, headers=bearer(OPERATOR))
    assert done.status == 200 and (await done.json())["replayed"] == 1


async def test_sign_out_ends_the_session(make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """After sign-out the same cookie, sent again, opens nothing."""
    client = await relay_with_dead_letter(make_relay, make_sink)
    await sign_in(client, VIEWER)
    cookie = next(c for c in client.session.cookie_jar if c.key == "relay_console").value
    csrf = csrf_of(await (await client.get("/console/")).text())
    out = await client.post("/console/signout", data={"csrf": csrf}, allow_redirects=False)
    assert (out.status, out.headers["Location"]) == (303, "/console/signin")
    again = await client.get("/console/events", allow_redirects=False,
                             headers={"Cookie": f"relay_console={cookie}"})
    assert again.status == 303 and again.headers["Location"].startswith("/console/signin")


async def test_refusals_are_console_pages_with_a_way_back(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """An unknown event, a bulk action with nothing chosen and a viewer's action are pages
    saying why, in the console's layout, with a link back that stays in the console."""
    client = await relay_with_dead_letter(make_relay, make_sink)
    await sign_in(client, VIEWER)
    missing = await client.get("/console/events/999999")
    page = await missing.text()
    assert missing.status == 404 and "no such event" in page
    assert "<nav>" in page and "console.css" in page  # the console's layout, not bare text
    csrf = csrf_of(await (await client.get("/console/dead")).text())
    refused = await client.post("/console/dead/replay", data={"all": "1", "csrf": csrf},
                                headers={"Referer": "javascript:alert(1)"})
    text = await refused.text()
    assert refused.status == 403 and "is a viewer" in text
    assert 'href="/console/"' in text and "javascript:" not in text
    client.session.cookie_jar.clear()
    await sign_in(client, OPERATOR)
    csrf = csrf_of(await (await client.get("/console/dead")).text())
    nothing = await client.post("/console/dead/replay", data={"csrf": csrf},
                                headers={"Referer": "http://127.0.0.1/console/dead"})
    text = await nothing.text()
    assert nothing.status == 400 and "choose at least one" in text
    assert 'href="/console/dead"' in text


async def test_a_quarantine_replay_that_changes_nothing_says_why(
        make_relay: MakeRelay) -> None:
    """Replaying a push the schemas still refuse reports it as still invalid."""
    client = await make_relay("  []", TOKENS)
    broken = signed("sms", {"events": "delivered", "app": 1, "timestamp": int(time.time())})
    assert (await client.post("/subhook/sms", data=broken)).status == 422
    await sign_in(client, OPERATOR)
    page = await (await client.get("/console/quarantine")).text()
    assert 'data-confirm="Discard all 1?' in page  # asked by confirm.js (no inline script)
    done = await client.post("/console/quarantine/replay",
                             data={"all": "1", "csrf": csrf_of(page)})
    assert "replayed 0, 1 still invalid" in await done.text()


async def test_destinations_page_pauses_resumes_and_retries_for_operators(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """An operator pauses (with a reason), resumes and retries from the destinations
    page, which shows the state and the URL; a viewer sees the state and no buttons, and
    the action is 403 for them."""
    client = await relay_with_dead_letter(make_relay, make_sink)
    await sign_in(client, OPERATOR)
    page = await (await client.get("/console/destinations")).text()
    assert 'action="/console/destinations/svc/pause"' in page and "/hook" in page
    response = await client.post("/console/destinations/svc/pause",
                                 data={"csrf": csrf_of(page), "reason": "deploy 42"})
    page = await response.text()
    assert response.status == 200 and 'data-state="paused"' in page
    assert "by otto: deploy 42" in page
    response = await client.post("/console/destinations/svc/resume",
                                 data={"csrf": csrf_of(page)})
    page = await response.text()
    assert 'data-state="healthy"' in page and "svc resumed" in page
    response = await client.post("/console/destinations/nope/retry", data={"csrf": csrf_of(page)})
    assert response.status == 404
    client.session.cookie_jar.clear()
    await sign_in(client, VIEWER)
    page = await (await client.get("/console/destinations")).text()
    assert 'data-state="healthy"' in page and "/pause" not in page
    response = await client.post("/console/destinations/svc/pause", data={"csrf": csrf_of(page)})
    assert response.status == 403
