"""Malformed headers anywhere are 400, never 500 (issue 26, item 11; SPEC 18): a Referer
that is no URL, an unknown, wrong or non-ASCII charset, multipart without a boundary, on
the console, the admin API and the SUBHOOK paths. Requests are written byte for byte."""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from typing import Any

from conftest import Client, MakeRelay, signed

from relay.web import console

TOKEN = "malformed-operator-token-0123456789"
TOKENS = f"admin:\n  tokens:\n    - {{name: otto, token: {TOKEN}, role: operator}}\n"
#: Content-Type values whose charset or boundary no reading agrees on.
MALFORMED = {
    b"application/x-www-form-urlencoded; charset=nope": "charset 'nope'",
    b"application/x-www-form-urlencoded; charset=utf-16": "charset 'utf-16'",
    b"application/x-www-form-urlencoded; charset=\xc3\xa9t\xc3\xa9": "charset",
    b"application/x-www-form-urlencoded; charset=utf-8; charset=latin-1": "charset",
    b"multipart/form-data": "without a boundary",
    b"multipart/form-data; boundary=": "boundary",
    b"application/json; charset=nope": "charset 'nope'",
}


async def raw(client: Client, method: str, path: str, headers: dict[str, bytes],
              body: bytes = b"") -> tuple[int, str]:
    """One request as written, on its own connection; (status, body as text)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    head += b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers.items())
    writer.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    answer = await reader.read()
    writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2].decode("utf-8", "replace")


async def signed_in(client: Client) -> tuple[bytes, str]:
    """The session cookie (as a Cookie header) and its CSRF token."""
    response = await client.post("/console/signin", data={"token": TOKEN, "next": "/console/"},
                                 allow_redirects=False)
    assert response.status == 303
    cookie = response.cookies["relay_console"].value
    page = await (await client.get("/console/dead")).text()
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert match
    return f"relay_console={cookie}".encode(), match.group(1)


async def test_a_referer_that_is_no_url_on_every_console_post(make_relay: MakeRelay) -> None:
    """`Referer: http://[` on each console POST, signed out and signed in without the CSRF
    token: the console's refusal page (401, 403), whose way back is the overview."""
    client = await make_relay("  []", TOKENS)
    cookie, _ = await signed_in(client)
    posts = [re.sub(r"\{\w+\}", "1", path) for method, path, _ in console.ROUTES
             if method == "POST" and path != "/console/signin"]
    assert len(posts) >= 6
    for referer in (b"http://[", b"http://[::1", b"//[/console/dead"):
        for path in posts:
            for extra, status in (({}, 401), ({"Cookie": cookie}, 403)):
                got, text = await raw(client, "POST", path, {
                    "Referer": referer, "Content-Type": b"application/x-www-form-urlencoded",
                    **extra}, b"all=1")
                assert got == status, (referer, path, extra, got, text[:300])
                assert 'href="/console/"' in text
        got, text = await raw(client, "POST", "/console/signin", {
            "Referer": referer, "Content-Type": b"application/x-www-form-urlencoded"},
            b"token=wrong-token-0123456789&next=http://[")
        assert got == 401, text[:300]


async def test_console_sign_in_with_a_charset_or_boundary_it_cannot_read(
        make_relay: MakeRelay) -> None:
    """charset=nope, utf-16, a non-ASCII charset, two charsets, multipart without a
    boundary: 400 on the sign-in page and on a signed-in action, the page naming the
    problem."""
    client = await make_relay("  []", TOKENS)
    cookie, csrf = await signed_in(client)
    for content_type, named in MALFORMED.items():
        got, text = await raw(client, "POST", "/console/signin",
                              {"Content-Type": content_type}, f"token={TOKEN}".encode())
        assert got == 400, (content_type, got, text[:300])
        assert named in html.unescape(text), (content_type, text[:600])
        got, text = await raw(client, "POST", "/console/dead/discard",
                              {"Content-Type": content_type, "Cookie": cookie},
                              f"all=1&csrf={csrf}".encode())
        assert got == 400, (content_type, got, text[:300])
        assert named in html.unescape(text), (content_type, text[:600])


async def test_admin_and_subhook_paths_refuse_them_with_a_problem_body(
        make_relay: MakeRelay) -> None:
    """The same headers on an admin POST and on a signed push: 400 with a JSON problem body
    naming the charset or the boundary."""
    client = await make_relay("  []", TOKENS)
    push = signed("sms", {"events": "mo", "address": "1", "app": 1, "content": "x",
                          "timestamp": int(time.time())})
    form = "&".join(f"{k}={v}" for k, v in push.items()).encode()
    for content_type, named in MALFORMED.items():
        for path, headers, body in (
                ("/admin/dead/discard", {"Authorization": f"Bearer {TOKEN}".encode()},
                 b'{"all": true}'),
                ("/subhook/sms", {}, form)):
            got, text = await raw(client, "POST", path, {"Content-Type": content_type,
                                                         **headers}, body)
            assert got == 400, (path, content_type, got, text[:300])
            answer: dict[str, Any] = json.loads(text)
            assert answer["status"] == "error", answer
            assert named.replace("'", "") in " ".join(answer["problems"]).replace("'", ""), \
                (path, content_type, answer)
