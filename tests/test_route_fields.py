"""`relay check`, reload, `relay route` and the console's routes page with SPEC 19's field
conditions and body templates."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import MakeRelay
from test_console import TOKENS, VIEWER, sign_in

from relay.cli.parser import main
from relay.runtime import RunningConfig, Runtime

HEAD = """\
subhooks:
  - {path: /subhook/sms, product: sms, keys: [k]}
routes:
"""

ROUTES = """\
  - name: by-app
    match: {product: sms, fields: {app: "10001"}}
    destinations: [{name: orders, url: "http://127.0.0.1:9000/orders"}]
  - name: us
    match:
      product: [sms, internationalsms]
      fields:
        address: {prefix: "+1"}
    destinations: [{name: us, url: "http://127.0.0.1:9000/us"}]
  - name: compliance
    match: {event: dropped, drop_class: [blacklist, unsubscribed]}
    destinations:
      - name: compliance
        url: http://127.0.0.1:9000/compliance
        body:
          phone: "{address}"
          class: "{$drop_class}"
          code: "{report}"
          carrier: "{operator}"
"""

WriteConfig = Callable[[str], Path]


def check(write_config: WriteConfig, capsys: pytest.CaptureFixture[str],
          routes: str) -> tuple[int, str, str]:
    code = main(["check", "--config", str(write_config(HEAD + routes))])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_accepts_and_summarises_field_routes(
        write_config: WriteConfig, capsys: pytest.CaptureFixture[str]) -> None:
    """The worked example loads; the summary shows each route's field conditions."""
    code, out, err = check(write_config, capsys, ROUTES)
    assert code == 0, err
    assert "route by-app: product=sms event=* tag=* fields=[app: glob '10001'] -> orders" in out
    assert "fields=[address: prefix '+1']" in out
    assert "fields=[drop_class: blacklist, unsubscribed] -> compliance" in out


def test_check_refuses_an_unknown_operator_with_its_line(
        write_config: WriteConfig, capsys: pytest.CaptureFixture[str]) -> None:
    """An operator SPEC 19 does not have is refused by name, at its key path and line."""
    code, _, err = check(write_config, capsys, ROUTES.replace("{prefix:", "{startswith:"))
    assert code == 1
    assert ("relay.yaml:11: routes[1].match.fields.address.startswith: unknown operator "
            "'startswith' (known: equals, in, prefix, suffix, glob, exists, gte, lte, not)"
            in err)


def test_check_refuses_fields_no_matched_event_has(
        write_config: WriteConfig, capsys: pytest.CaptureFixture[str]) -> None:
    """A condition or a placeholder naming a field none of the events it applies to has is
    refused, naming the key path and line, with the closest known field."""
    routes = ROUTES.replace("address: {prefix", "adress: {prefix").replace(
        '"{report}"', '"{reprot}"')
    code, _, err = check(write_config, capsys, routes)
    assert code == 1
    assert ("relay.yaml:11: routes[1].match.fields.adress: no event this route matches has a "
            "field 'adress' (did you mean 'address'?)") in err
    assert ("relay.yaml:21: routes[2].destinations[0].body.code: no event this destination "
            "gets has a field 'reprot' (did you mean 'report'?)") in err


def test_check_knows_which_events_a_destination_gets(
        write_config: WriteConfig, capsys: pytest.CaptureFixture[str]) -> None:
    """`report` is a field of dropped events, not of delivered ones: a body reached only by
    delivered events may not name it; `content` is no field of sms delivered."""
    routes = """\
  - name: receipts
    match: {product: sms, event: delivered, fields: {content: "*"}}
    destinations:
      - {name: d, url: "http://127.0.0.1:9/d", body: {code: "{report}", at: "{timestamp}"}}
"""
    code, _, err = check(write_config, capsys, routes)
    assert code == 1
    assert "routes[0].match.fields.content: no event this route matches" in err
    assert "routes[0].destinations[0].body.code: no event this destination gets" in err
    assert "body.at" not in err


def test_check_refuses_a_drop_class_on_a_route_without_dropped_events(
        write_config: WriteConfig, capsys: pytest.CaptureFixture[str]) -> None:
    """drop_class matches dropped events only: a route whose event matcher excludes them is
    a mistake."""
    routes = """\
  - name: r
    match: {event: delivered, drop_class: number}
    destinations: [{name: d, url: "http://127.0.0.1:9/d"}]
"""
    code, _, err = check(write_config, capsys, routes)
    assert code == 1
    assert "relay.yaml:5: routes[0].match.drop_class: matches dropped events only" in err


def test_check_refuses_malformed_placeholders_all_in_one_run(
        write_config: WriteConfig, capsys: pytest.CaptureFixture[str]) -> None:
    """Every malformed placeholder is reported, each with its path, in one run."""
    routes = ROUTES.replace('"{address}"', '"{address"').replace('"{$drop_class}"',
                                                                 '"{$class}"')
    code, _, err = check(write_config, capsys, routes)
    assert code == 1
    assert "relay.yaml:19: routes[2].destinations[0].body.phone: '{' at character 1 is not " \
           "closed" in err
    assert "relay.yaml:20: routes[2].destinations[0].body.class: unknown {$class}" in err


def test_reload_refuses_a_bad_field_condition_and_keeps_the_running_config(
        write_config: WriteConfig) -> None:
    """A reload bringing an unknown operator or field is refused; the old config serves."""
    path = write_config(HEAD + ROUTES)
    runtime = Runtime(RunningConfig.load(path))
    before = runtime.current.settings
    for bad in (ROUTES.replace("{prefix:", "{starts:"), ROUTES.replace("{address}", "{adr}"),
                ROUTES.replace("{address}", "{address")):
        path.write_text(HEAD + bad, encoding="utf-8")
        assert runtime.reload() is False
        assert runtime.current.settings is before
    path.write_text(HEAD + ROUTES.replace('"10001"', '"10002"'), encoding="utf-8")
    assert runtime.reload() is True
    assert runtime.current.settings.routes[0].match != before.routes[0].match


def test_route_explains_each_field_condition_and_shows_each_body(
        write_config: WriteConfig, capsys: pytest.CaptureFixture[str]) -> None:
    """`relay route --field` says for each condition whether it holds and why, and prints
    the body each destination would get."""
    path = str(write_config(HEAD + ROUTES))
    args = ["route", "--config", path, "--product", "sms", "--event", "dropped",
            "--field", "app=10002", "--field", "address=+14155550100",
            "--field", "report=BLACK", "--field", "operator=AT&T"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "route by-app: no match" in out
    assert "fields.app: '10002' does not hold glob '10001'" in out
    assert "fields.address: '+14155550100' holds prefix '+1'" in out
    assert "drop_class: report class blacklist is in [blacklist, unsubscribed]" in out
    line = next(x for x in out.splitlines() if x.startswith("body for compliance: "))
    assert json.loads(line.removeprefix("body for compliance: ")) == {
        "phone": "+14155550100", "class": "blacklist", "code": "BLACK", "carrier": "AT&T"}
    assert "body for us: " in out
    assert out.strip().splitlines()[-1].startswith("destinations: us (")
    assert main([*args[:7], "--field", "app"]) == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err


async def test_console_routes_page_explains_fields_and_shows_bodies(
        make_relay: MakeRelay) -> None:
    """The routes page's form takes fields; it explains each condition and shows the body
    each destination would get, as the CLI does."""
    client = await make_relay(ROUTES, TOKENS)
    await sign_in(client, VIEWER)
    page = await client.get("/console/routes", params={
        "product": "sms", "event": "dropped",
        "fields": "app=10001\r\naddress=+447700900000\r\nreport=unsubscribe\r\n"})
    text = await page.text()
    assert page.status == 200
    assert "route <strong>by-app</strong>: <mark>matches</mark>" in text
    assert "route <strong>us</strong>: no match" in text
    assert "fields.address: &#39;+447700900000&#39; does not hold prefix &#39;+1&#39;" in text
    assert "drop_class: report class unsubscribed is in [blacklist, unsubscribed]" in text
    assert "body for <strong>compliance</strong>" in text
    assert "&#34;class&#34;:&#34;unsubscribed&#34;" in text
    assert "address: prefix &#39;+1&#39;" in text  # the loaded routes table
    bad = await (await client.get("/console/routes", params={
        "product": "sms", "event": "dropped", "fields": "app"})).text()
    assert "expected NAME=VALUE" in bad
