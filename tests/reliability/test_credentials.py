"""Guessing admin and console credentials (issue 26, items 9 and 10): wrong bearer tokens
are limited per client address like console sign-ins and logged, throttled; both limits
read X-Forwarded-For as allow_ips does (every line, from trusted proxies only)."""

from __future__ import annotations

import logging

import pytest
from conftest import Client, MakeRelay
from multidict import CIMultiDict

TOKEN = "admin-credentials-token-0123456789"
TOKENS = (f"admin:\n  tokens:\n    - {{name: otto, token: {TOKEN}, role: operator}}\n"
          "trusted_proxies: [127.0.0.1/32]\n")
GOOD = {"Authorization": f"Bearer {TOKEN}"}


def through_proxy(client_line: str, proxy_line: str, **others: str) -> CIMultiDict[str]:
    """A request as a proxy that appends a line forwards it: the client's own
    X-Forwarded-For line first, the proxy's (the client's real address) after it."""
    return CIMultiDict([("X-Forwarded-For", client_line), ("X-Forwarded-For", proxy_line),
                        *others.items()])


async def admin_status(client: Client, headers: CIMultiDict[str] | dict[str, str]) -> int:
    async with client.get("/admin/dead", headers=headers) as response:
        if response.status == 429:
            assert int(response.headers["Retry-After"]) > 0
            assert (await response.json())["error"] == "too_many_requests"
        return response.status


async def test_wrong_bearer_tokens_are_limited_per_address(
        make_relay: MakeRelay, caplog: pytest.LogCaptureFixture) -> None:
    """Ten wrong tokens from one address: 401 each, then 429 with Retry-After, even for the
    right token; another address still gets in; the guesses are logged, throttled, the
    tokens never."""
    client = await make_relay("  []", TOKENS)
    caplog.set_level(logging.WARNING, logger="relay.admin")
    def guess(token: str) -> CIMultiDict[str]:
        return through_proxy("10.9.9.9", "203.0.113.5", Authorization=f"Bearer {token}")

    for index in range(10):
        assert await admin_status(client, guess(f"g{index}")) == 401
    assert await admin_status(client, guess("g10")) == 429
    assert await admin_status(client, guess(TOKEN)) == 429
    assert await admin_status(client, through_proxy("10.9.9.9", "203.0.113.6", **GOOD)) == 200
    assert await admin_status(client, {}) == 401  # no Authorization at all: no guess
    lines = [r.getMessage() for r in caplog.records if r.name == "relay.admin"]
    assert 1 <= len(lines) <= 4, lines
    assert "wrong bearer token from 203.0.113.5" in lines[0], lines
    assert not any("g1" in line or TOKEN in line for line in lines), lines


async def test_a_client_line_cannot_hide_the_address_the_proxy_added(
        make_relay: MakeRelay) -> None:
    """Behind a trusted proxy that appends a line, a client writing a new first
    X-Forwarded-For line on each try is still one address: console sign-ins and admin
    tokens are 429 after ten."""
    client = await make_relay("  []", TOKENS)
    statuses = []
    for index in range(12):
        response = await client.post(
            "/console/signin", data={"token": f"guess-{index:020d}", "next": "/console/"},
            headers=through_proxy(f"198.51.100.{index}", "203.0.113.7"),
            allow_redirects=False)
        statuses.append(response.status)
    assert statuses == [401] * 10 + [429] * 2, statuses
    admin = [await admin_status(client, through_proxy(
        f"198.51.100.{index}", "203.0.113.8", Authorization=f"Bearer guess-{index}"))
        for index in range(12)]
    assert admin == [401] * 10 + [429] * 2, admin
    # the proxy's own address for another client: that client signs in
    other = await client.post("/console/signin", data={"token": TOKEN, "next": "/console/"},
                              headers=through_proxy("1.1.1.1", "203.0.113.9"),
                              allow_redirects=False)
    assert other.status == 303
