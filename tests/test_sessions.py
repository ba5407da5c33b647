"""A console sign-out holds after a restart and on every relay sharing the store (SPEC 18)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from conftest import KEYS, Client

from relay.runtime import RunningConfig
from relay.web.app import create_app

TOKEN = "operator-token-0123456789"


def config(store_url: str) -> str:
    subhooks = "\n".join(f"  - {{path: /subhook/{p}, product: {p}, keys: [{k}]}}"
                         for p, k in KEYS.items())
    return (f"listen: 127.0.0.1:0\nstore: {store_url}\nsubhooks:\n{subhooks}\nroutes: []\n"
            f"admin: {{tokens: [{{name: otto, token: {TOKEN}, role: operator}}]}}\n")


async def relay(tmp_path: Path, store_url: str, aiohttp_client: Any, name: str) -> Client:
    path = tmp_path / f"{name}.yaml"
    path.write_text(config(store_url), encoding="utf-8")
    client: Client = await aiohttp_client(create_app(RunningConfig.load(path)))
    return client


async def signed_in(client: Client) -> tuple[str, str]:
    """(the session cookie, its CSRF token)."""
    response = await client.post("/console/signin", data={"token": TOKEN, "next": "/console/"},
                                 allow_redirects=False)
    assert response.status == 303
    cookie = response.cookies["relay_console"].value
    page = await (await client.get("/console/", headers={
        "Cookie": f"relay_console={cookie}"})).text()
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert match
    return cookie, match.group(1)


async def opens(client: Client, cookie: str) -> bool:
    response = await client.get("/console/events", allow_redirects=False,
                                headers={"Cookie": f"relay_console={cookie}"})
    return response.status == 200


async def test_sign_out_survives_a_restart(tmp_path: Path, store_url: str,
                                           aiohttp_client: Any) -> None:
    """Signed out, then the relay restarts on the same store: the cookie opens nothing."""
    first = await relay(tmp_path, store_url, aiohttp_client, "first")
    cookie, csrf = await signed_in(first)
    out = await first.post("/console/signout", data={"csrf": csrf}, allow_redirects=False,
                           headers={"Cookie": f"relay_console={cookie}"})
    assert out.status == 303
    await first.close()
    again = await relay(tmp_path, store_url, aiohttp_client, "again")
    assert not await opens(again, cookie)
    other, _ = await signed_in(again)
    assert await opens(again, other)  # only that session is out


async def test_sign_out_holds_on_every_instance(tmp_path: Path, postgres_url: str,
                                               aiohttp_client: Any) -> None:
    """Two relays on one PostgreSQL store: a session signed out on one is refused by the
    other at once."""
    one = await relay(tmp_path, postgres_url, aiohttp_client, "one")
    two = await relay(tmp_path, postgres_url, aiohttp_client, "two")
    cookie, csrf = await signed_in(one)
    assert await opens(two, cookie)
    out = await two.post("/console/signout", data={"csrf": csrf}, allow_redirects=False,
                         headers={"Cookie": f"relay_console={cookie}"})
    assert out.status == 303
    assert not await opens(one, cookie)
