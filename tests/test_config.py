from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from relay.config import Role, load_config, parse_config, parse_duration, parse_size
from relay.errors import ConfigError
from relay.runtime import RunningConfig

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = """\
subhooks:
  - path: /subhook/sms
    product: sms
    keys: ["${SMS_KEY}", "old-key"]
routes:
  - name: receipts
    match: {product: sms, event: [delivered, dropped], tag: "order-*"}
    destinations:
      - name: orders
        url: http://127.0.0.1:9000/hook
        secret: "${SECRET:-whsec_YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh}"
        timeout: 250ms
"""


OTHER_SECRET = "whsec_" + "Y" * 32


def problems_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env or {}, source="relay.yaml")
    return info.value.problems


def test_durations() -> None:
    """250ms, 1s, 10m, 48h, 2d and bare seconds are understood."""
    assert parse_duration("250ms") == 0.25
    assert parse_duration("1s") == 1.0
    assert parse_duration("10m") == 600.0
    assert parse_duration("48h") == 172800.0
    assert parse_duration("2d") == 172800.0
    assert parse_duration(5) == 5.0
    assert parse_duration("1.5") == 1.5
    for bad in ("5 minutes", "-1s", "", "1h30m"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)


def test_sizes() -> None:
    """Byte sizes with binary units."""
    assert parse_size("64KiB") == 65536
    assert parse_size("1MiB") == 1048576
    assert parse_size(100) == 100
    with pytest.raises(ValueError, match="not a size"):
        parse_size("1 GB-ish")


def test_expansion_and_defaults() -> None:
    """${VAR} takes the environment; ${VAR:-default} falls back; $$ is a dollar."""
    settings = parse_config(MINIMAL.replace("old-key", "price$$5"), {"SMS_KEY": "k1"})
    assert settings.subhooks[0].keys == ("k1", "price$5")
    dest = settings.routes[0].destinations[0]
    assert dest.secret == "whsec_YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh"
    assert dest.timeout == 0.25
    assert parse_config(MINIMAL, {"SMS_KEY": "k", "SECRET": OTHER_SECRET}).routes[0] \
        .destinations[0].secret == OTHER_SECRET


def test_expansion_cannot_change_structure() -> None:
    """A variable holding YAML syntax stays a plain string."""
    settings = parse_config(MINIMAL, {"SMS_KEY": "a, b]: {c"})
    assert settings.subhooks[0].keys[0] == "a, b]: {c"


def test_missing_variable_names_path_and_line() -> None:
    """An unset ${VAR} without default is an error at its key path and line."""
    assert problems_of(MINIMAL) == [
        "relay.yaml:4: subhooks[0].keys[0]: environment variable SMS_KEY is not set "
        "(and has no :-default)"
    ]


def test_schema_errors_name_key_path_and_line() -> None:
    """Unknown keys, wrong types and missing keys are reported where they are."""
    text = MINIMAL.replace("timeout: 250ms", "timeout: soon\n        colour: red").replace(
        "product: sms\n", "product: fax\n", 1)
    found = problems_of(text, {"SMS_KEY": "k"})
    assert "relay.yaml:3: subhooks[0].product: 'fax' is not one of " \
           "['sms', 'internationalsms', 'mms', 'mail', 'voice', 'shorturl']" in found
    assert "relay.yaml:12: routes[0].destinations[0].timeout: invalid value 'soon'" in found
    assert "relay.yaml:13: routes[0].destinations[0].colour: unknown key" in found
    assert len(found) == 3
    assert problems_of("subhooks: []\n") == [
        "relay.yaml:1: (top level): 'routes' is required",
        "relay.yaml:1: subhooks: [] should be non-empty",
    ]


def test_conflicting_destination_definitions_are_refused() -> None:
    """One name is one destination: the same name with another URL is an error."""
    text = MINIMAL + """\
  - name: again
    destinations:
      - name: orders
        url: http://127.0.0.1:9999/other
"""
    (problem,) = problems_of(text, {"SMS_KEY": "k"})
    assert problem.startswith("relay.yaml:15: routes[1].destinations[0].name: destination "
                              "'orders' is defined twice")


def test_retry_defaults_and_overrides() -> None:
    """Global retry applies to every destination; a destination may override parts of it."""
    text = MINIMAL + """\
        retry: {max_attempts: 3}
retry: {initial_delay: 2s, max_delay: 1m}
"""
    policy = parse_config(text, {"SMS_KEY": "k"}).routes[0].destinations[0].retry
    assert (policy.max_attempts, policy.initial_delay, policy.max_delay, policy.max_age) == (
        3, 2.0, 60.0, 48 * 3600.0)
    bad = problems_of(MINIMAL + "retry: {initial_delay: 1m, max_delay: 1s}\n", {"SMS_KEY": "k"})
    assert bad == ["relay.yaml:13: retry.max_delay: must not be less than initial_delay"]


def test_invalid_yaml_is_a_config_error() -> None:
    """Broken YAML is reported, not raised as a yaml exception."""
    (problem,) = problems_of("subhooks: [\n")
    # one line naming the file and the line, never the parser's "<unicode string>"
    assert problem.startswith("relay.yaml:2: not valid YAML: ")
    assert "\n" not in problem and "unicode string" not in problem


def test_secrets_do_not_show_in_repr() -> None:
    """Keys, secrets and the admin token are kept out of reprs (and so out of logs)."""
    settings = parse_config(MINIMAL + "admin: {token: hunter2}\n", {"SMS_KEY": "sekrit-key"})
    shown = repr(settings)
    for secret in ("sekrit-key", "old-key", "whsec_YWFhYWFh", "hunter2"):
        assert secret not in shown


def test_example_config_loads(tmp_path: Path) -> None:
    """config.example.yaml is valid on a fresh machine with no variables set."""
    settings = load_config(ROOT / "config.example.yaml", env={})
    assert [s.product for s in settings.subhooks] == ["sms", "internationalsms", "mms", "mail",
                                                      "voice", "shorturl"]
    assert settings.store == "sqlite:///relay.db"


def test_relative_paths_resolve_against_the_config_file(
    write_config: Callable[[str], Path],
) -> None:
    """`schemas_dir` is relative to the config file, not the working directory."""
    path = write_config(MINIMAL + "schemas_dir: my-schemas\n")
    settings = load_config(path, env={"SMS_KEY": "k"})
    assert settings.schemas_dir == path.parent / "my-schemas"
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(path.parent / "missing.yaml")


def test_cidrs_are_checked() -> None:
    """allow_ips and trusted_proxies must be addresses or CIDRs."""
    text = MINIMAL.replace('keys: ["${SMS_KEY}", "old-key"]',
                           'keys: [k]\n    allow_ips: ["10.0.0.0/8", "not-an-ip"]')
    assert problems_of(text + "trusted_proxies: [127.0.0.1, 300.1.1.1]\n") == [
        "relay.yaml:5: subhooks[0].allow_ips[1]: 'not-an-ip' is not an IP address or CIDR",
        "relay.yaml:14: trusted_proxies[1]: '300.1.1.1' is not an IP address or CIDR",
    ]


@pytest.mark.parametrize(("url", "problem"), [
    ("http://127.0.0.1:9000steady", "is not a valid URL: "),
    ("http://127.0.0.1:99999/hook", "is not a valid URL: "),
    ("http:///hook", "has no host"),
    # yarl reads it; the delivery client could never send to it
    ("http://a|b.com/hook", "is not a valid URL: invalid international domain name"),
])
def test_destination_urls_are_checked(url: str, problem: str) -> None:
    """A destination URL that could never be sent to is a config error, not a dead letter."""
    (found,) = problems_of(MINIMAL.replace("http://127.0.0.1:9000/hook", url),
                           {"SMS_KEY": "k"})
    assert found.startswith(f"relay.yaml:10: routes[0].destinations[0].url: {url!r} ")
    assert problem in found


def test_destination_headers_are_checked_without_quoting_values() -> None:
    """A header value with a line break (it would end the header) and a name HTTP does not
    allow are config errors; the value, which may be a credential, is never quoted."""
    text = MINIMAL.replace("timeout: 250ms", 'timeout: 250ms\n        headers: HEADERS')
    assert problems_of(text.replace("HEADERS", '{X-Token: "s3cret\\nX-Admin: yes"}'),
                       {"SMS_KEY": "k"}) == [
        "relay.yaml:13: routes[0].destinations[0].headers.X-Token: must not contain control "
        "characters such as a line break (value hidden)"]
    assert problems_of(text.replace("HEADERS", '{"Bad Name": v}'), {"SMS_KEY": "k"}) == [
        "relay.yaml:13: routes[0].destinations[0].headers: 'Bad Name' is not a valid header "
        "name"]
    settings = parse_config(text.replace("HEADERS", '{X-Token: "tab\\tand é"}'),
                            {"SMS_KEY": "k"}, source="relay.yaml")
    (destination,) = settings.destinations().values()
    assert destination.headers == (("X-Token", "tab\tand é"),)


def test_retention_and_lease_margin() -> None:
    settings = parse_config(MINIMAL + "retention: {delivered: 2d, interval: 1m}\n"
                            "lease_margin: 5s\n", {"SMS_KEY": "k"})
    assert (settings.retention_delivered, settings.retention_interval,
            settings.lease_margin) == (2 * 86400.0, 60.0, 5.0)
    assert parse_config(MINIMAL, {"SMS_KEY": "k"}).lease_margin == 30.0


def test_admin_tokens_with_roles_and_the_older_token_as_operator() -> None:
    """`admin.tokens` entries keep their name and role; `admin.token` is the operator
    `admin`; a name or token given twice is a problem that never quotes the token."""
    extra = ("admin:\n  token: older-operator-token\n  tokens:\n"
             "    - {name: ann, token: viewer-token-0123456789, role: viewer}\n"
             "    - {name: bob, token: operator-token-012345678, role: operator}\n")
    settings = parse_config(MINIMAL + extra, env={"SMS_KEY": "k"})
    assert [(t.name, t.role) for t in settings.admin_tokens] == [
        ("ann", Role.VIEWER), ("bob", Role.OPERATOR), ("admin", Role.OPERATOR)]
    assert "viewer-token" not in repr(settings)
    twice = MINIMAL + ("admin:\n  tokens:\n"
                       "    - {name: ann, token: same-token-0123456789, role: viewer}\n"
                       "    - {name: ann, token: same-token-0123456789, role: operator}\n")
    found = problems_of(twice, {"SMS_KEY": "k"})
    assert any("admin.tokens[1].name: 'ann' is named twice" in p for p in found), found
    assert any("admin.tokens[1].token: the same token" in p for p in found), found
    bad = MINIMAL + "admin:\n  tokens:\n    - {name: cy, token: short, role: admin}\n"
    found += problems_of(bad, {"SMS_KEY": "k"})
    assert any("admin.tokens[0].role: 'admin' is not one of" in p for p in found), found
    assert any("admin.tokens[0].token: must be at least 16" in p for p in found), found
    assert not any("same-token" in p or "short" in p for p in found), found


BAD_DAY = MINIMAL.replace('''        timeout: 250ms
''', '''        timeout: 250ms
        rate: 600/m
        order: send_id
        breaker: {after: 3, probe: 5s}
      - {name: audit, url: "http://127.0.0.1:9001/a", breaker: off}
breaker: {after: 20}
alerts:
  - {name: oncall, url: "http://127.0.0.1:9002/alert", format: dingtalk, kinds: [dead_letter]}
''')


def test_bad_day_keys_and_defaults() -> None:
    """max_attempts defaults to none; breaker per destination over the global one, off;
    rate per second; order; alerts with kinds (all by default)."""
    settings = parse_config(BAD_DAY, {"SMS_KEY": "k"})
    orders, audit = settings.routes[0].destinations
    assert orders.retry.max_attempts is None and orders.retry.max_age == 48 * 3600
    assert (orders.breaker.after, orders.breaker.probe) == (3, 5.0)
    assert audit.breaker.after is None
    assert settings.breaker.after == 20
    assert (orders.rate, orders.order, audit.rate, audit.order) == (10.0, "send_id", None, None)
    (alert,) = settings.alerts
    assert (alert.format, alert.kinds) == ("dingtalk", frozenset({"dead_letter"}))
    default = parse_config(MINIMAL, {"SMS_KEY": "k"}).routes[0].destinations[0]
    assert (default.breaker.after, default.breaker.probe) == (10, 30.0)


@pytest.mark.parametrize(("secret", "why"), [
    ("notwhsec", "must start with whsec_"),
    ("whsec_!!!not-base64", "must be base64"),
    ("whsec_YWJj", "is 3 bytes"),
    ("whsec_" + "A" * 100, "is 75 bytes"),
])
def test_unusable_secrets_are_refused_naming_the_key_not_the_value(secret: str,
                                                                   why: str) -> None:
    """A destination or alert secret must be whsec_ + base64 of 24 to 64 bytes; the
    problem names its key path and never quotes the value."""
    for text in (MINIMAL, BAD_DAY.replace("format: dingtalk,", f"secret: '{secret}',")):
        problems = problems_of(text, {"SMS_KEY": "k", "SECRET": secret})
        assert any("secret" in p and why in p for p in problems), problems
        assert not any(secret in p for p in problems), problems


def test_rates_and_breakers_that_are_not_refused_by_name() -> None:
    """A rate that is not n/s or n/m, an unknown breaker key, an unknown order: refused
    naming the key path."""
    for bad, key in (("rate: 600/m", "rate: 5/h"), ("order: send_id", "order: tag"),
                     ("breaker: {after: 3, probe: 5s}", "breaker: {afterr: 3}")):
        problems = problems_of(BAD_DAY.replace(bad, key), {"SMS_KEY": "k"})
        assert any("destinations[0]." + key.split(":")[0] in p for p in problems), problems

def test_tokens_must_be_kept_as_long_as_the_replay_window() -> None:
    """retention.tokens shorter than replay_window.past + future is refused, naming the key
    and its line: a token forgotten inside the window could be replayed (SPEC 18)."""
    env = {"SMS_KEY": "k"}
    text = MINIMAL + "replay_window: {past: 2h, future: 5m}\nretention: {tokens: 2h}\n"
    (problem,) = problems_of(text, env)
    assert problem.startswith("relay.yaml:") and "retention.tokens" in problem, problem
    assert "7200s is shorter than the replay window" in problem and "7500s" in problem
    assert parse_config(text.replace("tokens: 2h", "tokens: 125m"), env).retention_tokens \
        == 7500.0


def test_check_finds_schema_and_semantic_problems_in_one_run(tmp_path: Path) -> None:
    """A schema problem and an unknown event of a route (found against the event schemas)
    are reported together, each with its line; known events list no alias spelling."""
    path = tmp_path / "relay.yaml"
    path.write_text(MINIMAL.replace("timeout: 250ms", "timeout: soon").replace(
        "event: [delivered, dropped]", "event: [delievered, dropped]").replace(
        "${SMS_KEY}", "sms-key"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        RunningConfig.load(path)
    found = info.value.problems
    assert any(p.startswith(f"{path}:12: routes[0].destinations[0].timeout") for p in found), found
    (event,) = [p for p in found if "delievered" in p]
    assert event.startswith(f"{path}:7: routes[0].match.event: 'delievered' matches no event")
    assert "unkown" not in event and "unknown" in event
