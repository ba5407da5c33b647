"""Secrets anyone can read (issue 26, items 6 and 13): the example's published keys never
serve on a public address, and a destination URL's password is never printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from conftest import ROOT, signed
from relayproc import Relay, free_port, subhooks_yaml

from relay.config.placeholders import PUBLISHED, is_loopback, published_in_use
from relay.runtime import RunningConfig, Runtime

EXAMPLE = ROOT / "config.example.yaml"
#: The variables config.example.yaml sets a secret with (keys and destination secrets).
SECRET_VARIABLES = {"SUBHOOK_SMS_KEY", "SUBHOOK_INTERSMS_KEY", "SUBHOOK_MMS_KEY",
                    "SUBHOOK_MAIL_KEY", "SUBHOOK_VOICE_KEY", "SUBHOOK_SHORTURL_KEY",
                    "ORDERS_WEBHOOK_SECRET"}


def run_relay(*args: str, cwd: Path, env: dict[str, str] | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relay", *args], capture_output=True,
                          text=True, check=False, cwd=cwd, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_the_table_of_placeholders_is_the_examples() -> None:
    """PUBLISHED holds exactly the defaults config.example.yaml gives its keys and secrets,
    each with the variable that sets it."""
    text = EXAMPLE.read_text(encoding="utf-8")
    found = {default: name for name, default in
             re.findall(r"\$\{([A-Z_]+):-([^}]*)\}", text) if name in SECRET_VARIABLES}
    assert found == dict(PUBLISHED)
    assert set(PUBLISHED.values()) == SECRET_VARIABLES


def test_loopback_addresses() -> None:
    assert all(map(is_loopback, ("127.0.0.1", "127.0.0.2", "::1", "localhost")))
    assert not any(map(is_loopback, ("0.0.0.0", "::", "", "10.0.0.1", "relay.example")))


def test_serve_on_a_public_address_refuses_the_examples_secrets(tmp_path: Path) -> None:
    """config.example.yaml on 0.0.0.0 (the Docker image's RELAY_LISTEN): exit 1 before
    listening, naming each variable to set, never a value."""
    port = free_port()
    result = run_relay("serve", "--config", str(EXAMPLE), cwd=tmp_path,
                       env={"RELAY_LISTEN": f"0.0.0.0:{port}"})
    assert result.returncode == 1, result.stderr
    for variable in SECRET_VARIABLES:
        assert f"set {variable}" in result.stderr, result.stderr
    for value in PUBLISHED:
        assert value not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "relay.db").exists()  # refused before the store was touched


async def test_with_its_own_secrets_the_public_example_refuses_forged_pushes(
        tmp_path: Path) -> None:
    """With every variable set, the example serves on 0.0.0.0, and a push signed with the
    published key is 401."""
    port = free_port()
    env = {"RELAY_LISTEN": f"0.0.0.0:{port}",
           **{name: f"own-{name.lower()}-0123456789" for name in SECRET_VARIABLES}}
    env["ORDERS_WEBHOOK_SECRET"] = "whsec_" + "b3duLXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm"
    relay = Relay(EXAMPLE, port, tmp_path, env=env)
    await relay.start()
    try:
        forged = signed("sms", {"events": "delivered", "address": "13800000000", "app": 1,
                                "send_id": "forged", "timestamp": int(time.time())},
                        key="example-sms-subhook-key")
        async with aiohttp.ClientSession() as session, \
                session.post(f"{relay.url}/subhook/sms", data=forged) as response:
            assert response.status == 401
    finally:
        relay.stop()


def test_a_reload_cannot_bring_a_published_secret_onto_a_public_address(
        tmp_path: Path) -> None:
    """A relay listening on 0.0.0.0 refuses a reload whose destination secret or admin token
    is a published placeholder (the running config stays), each named with what to change;
    on loopback the same reload is taken."""
    config = tmp_path / "relay.yaml"
    base = f"store: sqlite:///{tmp_path / 'relay.db'}\nsubhooks:\n{subhooks_yaml()}\n"
    config.write_text("listen: 0.0.0.0:8080\n" + base + "routes: []\n", encoding="utf-8")
    runtime = Runtime(RunningConfig.load(config))
    published = ("routes:\n  - name: r\n    destinations:\n      - {name: svc, url: "
                 "'http://127.0.0.1:9/x', secret: "
                 "'${SVC_SECRET:-whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}'}\n"
                 "admin:\n  tokens:\n    - {name: ann, token: example-sms-subhook-key, "
                 "role: viewer}\n")
    config.write_text("listen: 0.0.0.0:8080\n" + base + published, encoding="utf-8")
    assert runtime.reload() is False
    assert runtime.current.settings.routes == ()
    settings = RunningConfig.load(config).settings
    named = "is a published placeholder of config.example.yaml"
    assert published_in_use(settings, config.read_text(encoding="utf-8")) == [
        f"the secret of destination svc (routes[0].destinations[0].secret) {named}: set "
        "SVC_SECRET",
        f"the admin token of ann {named}: replace it where the config writes it out"]
    # a value from the environment (the file does not say it): what the example calls it
    assert published_in_use(settings, "")[1] == (
        f"the admin token of ann {named}: set your own in the config or its variable "
        "(config.example.yaml sets it with SUBHOOK_SMS_KEY)")
    config.write_text("listen: 127.0.0.1:8080\n" + base + "routes: []\n", encoding="utf-8")
    loopback = Runtime(RunningConfig.load(config))
    config.write_text("listen: 127.0.0.1:8080\n" + base + published, encoding="utf-8")
    assert loopback.reload() is True


def test_destination_url_passwords_are_never_printed(tmp_path: Path) -> None:
    """relay check, relay route and relay push print a destination's URL with its password
    and secret query parameters masked (SPEC 16)."""
    config = tmp_path / "relay.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{free_port()}\nstore: sqlite:///{tmp_path / 'relay.db'}\n"
        f"subhooks:\n{subhooks_yaml()}\nroutes:\n  - name: all\n    destinations:\n"
        "      - {name: svc, url: 'http://u:pw-secret-1@127.0.0.1:9/x?token=tok-secret-2'}\n",
        encoding="utf-8")
    checked = run_relay("check", "--config", str(config), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "-> svc (http://u:***@127.0.0.1:9/x?token=***)" in checked.stdout, checked.stdout
    routed = run_relay("route", "--config", str(config), "--product", "sms", "--event",
                       "delivered", cwd=tmp_path)
    assert "svc (http://u:***@127.0.0.1:9/x?token=***)" in routed.stdout, routed.stdout
    pushed = run_relay("push", "http://u:pw-secret-1@127.0.0.1:9/subhook/sms", "--product",
                       "sms", "--event", "delivered", "--key", "k", cwd=tmp_path)
    assert pushed.returncode == 1
    for result in (checked, routed, pushed):
        out = result.stdout + result.stderr
        assert "pw-secret-1" not in out and "tok-secret-2" not in out, out
