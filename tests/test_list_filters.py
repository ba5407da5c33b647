"""Dead letters and quarantine filtered (SPEC 21), on both stores: by destination, product,
event and since, in the admin API and the CLI alike; a bulk action with "all" takes the
filtered set and nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import KEYS, Client, MakeSink, eventually, signed

from relay.runtime import RunningConfig
from relay.web.app import create_app
from relay.web.state import STORE

TOKEN = "operator-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def relay(tmp_path: Path, store_url: str, aiohttp_client: Any,
                make_sink: MakeSink) -> AsyncIterator[tuple[Client, Path]]:
    """A relay whose two destinations, a and b, refuse everything (410: dead at once)."""
    a, b = await make_sink(script=[410] * 100), await make_sink(script=[410] * 100)
    subhooks = "\n".join(f"  - {{path: /subhook/{p}, product: {p}, keys: [{k}]}}"
                         for p, k in KEYS.items())
    path = tmp_path / "relay.yaml"
    path.write_text(
        f"listen: 127.0.0.1:0\nstore: {store_url}\nsubhooks:\n{subhooks}\nroutes:\n"
        f"  - {{name: sms, match: {{product: sms}}, destinations: [{{name: a, url: '{a.url}'}}]}}\n"
        f"  - {{name: all, destinations: [{{name: b, url: '{b.url}'}}]}}\n"
        f"admin: {{tokens: [{{name: otto, token: {TOKEN}, role: operator}}]}}\n",
        encoding="utf-8")
    client: Client = await aiohttp_client(create_app(RunningConfig.load(path)))
    yield client, path


async def push(client: Client, product: str, event: str, n: int) -> None:
    fields = {"events": event, "address": "13800138000", "app": 1, "send_id": f"{event}{n}",
              "timestamp": int(time.time()), "report": "UNDELIV"}
    assert (await client.post(f"/subhook/{product}", json=signed(product, fields))).status \
        == 200


async def dead(client: Client, query: str = "") -> list[dict[str, Any]]:
    response = await client.get(f"/admin/dead{query}", headers=AUTH)
    assert response.status == 200, await response.text()
    rows: list[dict[str, Any]] = (await response.json())["dead_letters"]
    return rows


async def test_dead_letters_filtered_and_replayed_by_filter(
        relay: tuple[Client, Path]) -> None:
    """Filters narrow the list; replay with all and a filter takes only those rows; a typo
    of an event or a destination is a 400 naming it."""
    client, _ = relay
    for n in range(2):
        await push(client, "sms", "delivered", n)
        await push(client, "mms", "dropped", n)
    # sms reaches a and b, mms only b: 2 + 2 + 2 = 6 dead letters

    async def six() -> bool:
        return len(await dead(client)) == 6

    await eventually(six, what="six dead letters")
    assert {r["destination"] for r in await dead(client, "?destination=a")} == {"a"}
    assert len(await dead(client, "?destination=b&product=mms")) == 2
    assert len(await dead(client, "?event=dropped")) == 2
    assert len(await dead(client, "?since=1h")) == 6
    for bad, named in (("?event=delivred", "did you mean delivered"),
                       ("?destination=c", "no destination named 'c'"),
                       ("?colour=red", "colour: not a filter")):
        response = await client.get(f"/admin/dead{bad}", headers=AUTH)
        assert response.status == 400 and named in (await response.text()), bad
    chosen = sorted(r["id"] for r in await dead(client, "?destination=b&product=sms"))
    response = await client.post("/admin/dead/replay?destination=b&product=sms",
                                 json={"all": True}, headers=AUTH)
    assert response.status == 200 and (await response.json())["ids"] == chosen
    await eventually(six, what="the replayed ones dead again (the service still says 410)")
    remaining = await dead(client)
    response = await client.post("/admin/dead/discard?destination=a", json={"all": True},
                                 headers=AUTH)
    assert sorted((await response.json())["discarded"]) == sorted(
        r["id"] for r in remaining if r["destination"] == "a")
    assert {r["destination"] for r in await dead(client)} == {"b"}
    response = await client.post("/admin/dead/replay?destination=b", json={"ids": [1]},
                                 headers=AUTH)
    assert response.status == 400  # ids choose themselves: not with a filter
    assert client.app is not None
    await client.app[STORE].ping()


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relay", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)


async def test_the_cli_filters_as_the_api_does(relay: tuple[Client, Path]) -> None:
    """`relay dead list --destination`, `--event` with a typo (exit 2, the hint), and
    `relay dead discard --all --product` taking only that product's."""
    client, config = relay
    await push(client, "sms", "delivered", 7)
    await push(client, "mms", "dropped", 7)

    async def three() -> bool:
        return len(await dead(client)) == 3

    await eventually(three, what="three dead letters")
    listed = json.loads(cli(config, "dead", "list", "--destination", "b", "--json").stdout)
    assert {r["destination"] for r in listed} == {"b"} and len(listed) == 2
    typo = cli(config, "dead", "list", "--event", "delivred")
    assert typo.returncode == 2 and "did you mean delivered" in typo.stderr
    both = cli(config, "dead", "discard", "1", "--product", "sms")
    assert both.returncode == 2 and "not both" in both.stderr
    done = cli(config, "dead", "discard", "--all", "--product", "mms")
    assert done.returncode == 0 and "discarded 1 dead letter(s)" in done.stdout, done
    assert {r["product"] for r in await dead(client)} == {"sms"}
