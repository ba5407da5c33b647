"""No full email address in anything the relay prints or answers (SPEC 10, issue 12)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from conftest import signed
from relayproc import Relay, delivery_states, free_port, subhooks_yaml, wait_until

from relay import docs2schema
from relay.sink import create_sink_app

ADMIN = "admin-token-privacy-5c1e"
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[a-z]{2,}")


def addressed(index: int, fields: dict[str, Any]) -> dict[str, Any]:
    """A doc example whose every email address is its own (person7-email@corp7.example)."""
    return {name: f"person{index}-{name}@corp{index}.example"
            if isinstance(value, str) and "@" in value else value
            for name, value in fields.items()}


async def test_no_full_email_address_in_logs_answers_listings_or_the_sink(
    tmp_path: Path, docs_dir: Path
) -> None:
    """Every mail doc example (own addresses in `email`, `new_email`, `mail_to`, `mail_from`)
    pushed to a relay logging at debug level, forwarded to `relay sink` and to a closed port
    (dead letters), plus a schema failure (quarantine) and a wrongly signed push: no address
    appears whole in the log, the answers, the sink's lines, the admin API or `relay dead
    list` / `relay quarantine list` (text and --json); masked ones do."""
    out = io.StringIO()
    sink = TestServer(create_sink_app(None, out), host="127.0.0.1")
    await sink.start_server()
    port, closed = free_port(), free_port()
    config = tmp_path / "relay.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\nstore: sqlite:///{tmp_path / 'relay.db'}\n"
        f"subhooks:\n{subhooks_yaml()}\nadmin: {{token: {ADMIN}}}\n"
        "routes:\n  - name: mail\n    match: {product: mail}\n    destinations:\n"
        f"      - {{name: sink, url: '{sink.make_url('/mail')}'}}\n"
        f"      - {{name: gone, url: 'http://127.0.0.1:{closed}/h',"
        # no breaker: every push to it is to become a dead letter, none held
        " retry: {max_attempts: 1}, breaker: off}\n"
        "log: {level: debug}\n", encoding="utf-8")
    relay = Relay(config, port, tmp_path)
    await relay.start()
    sent: list[str] = []
    answers: list[str] = []
    examples = [(e, f) for p, e, f in docs2schema.examples(docs_dir) if p == "mail"]
    try:
        async with aiohttp.ClientSession() as session:

            async def call(method: str, path: str, **kw: Any) -> int:
                async with session.request(method, relay.url + path, **kw) as response:
                    answers.append(await response.text())
                    return response.status

            for index, (event, fields) in enumerate(examples):
                push = addressed(index, {**fields, "events": event, "timestamp": int(time.time())})
                sent.extend(v for v in push.values() if isinstance(v, str) and "@" in v)
                assert await call("POST", "/subhook/mail", data=signed("mail", push)) == 200
            quarantined = addressed(90, {"events": "delivered", "email": "x@y.example",
                                         "timestamp": int(time.time())})
            wrong = addressed(91, {"events": "request", "email": "x@y.example", "app": 1,
                                   "send_id": "s", "timestamp": int(time.time())})
            sent += [quarantined["email"], wrong["email"]]
            assert await call("POST", "/subhook/mail", json=signed("mail", quarantined)) == 422
            assert await call("POST", "/subhook/mail",
                              data=signed("mail", wrong, key="wrong-key")) == 401
            await wait_until(
                lambda: delivery_states(tmp_path / "relay.db").get("dead") == len(examples),
                20, "every push to the closed port should be a dead letter")
            await wait_until(lambda: len(out.getvalue().splitlines()) >= len(examples), 20,
                             "the sink should print a line per mail push")
            auth = {"Authorization": f"Bearer {ADMIN}"}
            assert await call("GET", "/admin/dead", headers=auth) == 200
            assert await call("GET", "/admin/quarantine", headers=auth) == 200
    finally:
        relay.stop()
        await sink.close()
    listings = [subprocess.run([sys.executable, "-m", "relay", *args, "--config", str(config)],
                               capture_output=True, text=True, check=True, cwd=tmp_path).stdout
                for args in (("dead", "list"), ("dead", "list", "--json"),
                             ("quarantine", "list"), ("quarantine", "list", "--json"))]
    dead = json.loads(listings[1])
    assert len(dead) == len(examples) and len(json.loads(listings[3])) == 1
    printed = {"log": relay.log.read_text(encoding="utf-8"), "answers": "\n".join(answers),
               "sink": out.getvalue(), "listings": "\n".join(listings)}
    assert len(set(sent)) == len(sent) > len(examples)
    for where, text in printed.items():
        leaked = [address for address in sent if address in text]
        assert leaked == [], f"{where} shows {leaked}"
        assert not _EMAIL.search(text.replace("***@", "")), (where, _EMAIL.search(text))
    assert "p***@corp0.example" in printed["sink"]
    assert "p***@corp0.example" in printed["listings"]
    assert "contact=p***@corp" in printed["log"]
