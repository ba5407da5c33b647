"""Loading a config: YAML → ``${VAR}`` expansion → JSON Schema validation → Settings.

Every problem is reported with its key path (``routes[0].destinations[1].url``) and, where
the YAML gives it, its line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import yaml
import yarl

from relay import conditions, templates
from relay import constants as c
from relay.config.checking import Unrepeated, against_schema, yaml_problem
from relay.config.settings import AdminToken, AlertTarget, Limits, Role, Settings, Subhook
from relay.config.yamltools import (
    MAX_CONFIG_BYTES,
    KeyPath,
    Problems,
    expand,
    line_map,
    parse_duration,
    parse_size,
)
from relay.delivery.backoff import RetryPolicy
from relay.delivery.breaker import BreakerPolicy
from relay.delivery.pacing import parse_rate
from relay.delivery.urls import url_problem
from relay.errors import ConfigError
from relay.redact import redact_text, redact_url
from relay.routing import Destination, Match, Route
from relay.senders.urls import destination_url_problem, is_broker
from relay.whsec import secret_problem


def _matcher(value: Any) -> tuple[Any, ...] | None:
    if value is None:
        return None
    return tuple(value) if isinstance(value, list) else (value,)


def _tag_matcher(raw: Mapping[str, Any]) -> tuple[str | None, ...] | None:
    if "tag" not in raw:
        return None
    value = raw["tag"]
    return (None,) if value is None else _matcher(value)


class _Builder:
    """Turns validated plain data into Settings, collecting semantic problems."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems

    def admin_tokens(self, admin: Mapping[str, Any]) -> tuple[AdminToken, ...]:
        """``admin.tokens``, then ``admin.token`` as the operator ``admin``; names and
        tokens each unique (a problem names the entry, never the token)."""
        tokens = [AdminToken(t["name"], t["token"], Role(t["role"]))
                  for t in admin.get("tokens") or ()]
        if admin.get("token"):
            tokens.append(AdminToken("admin", admin["token"], Role.OPERATOR))
        names, secrets = set(), set()
        for index, entry in enumerate(tokens):
            if entry.name in names:
                self.problems.add(("admin", "tokens", index, "name"),
                                  f"{entry.name!r} is named twice")
            if entry.token in secrets:
                self.problems.add(("admin", "tokens", index, "token"),
                                  "the same token as an entry before it (value hidden)")
            names.add(entry.name)
            secrets.add(entry.token)
        return tuple(tokens)

    def duration(self, raw: Mapping[str, Any], key: str, path: KeyPath, default: float) -> float:
        if key not in raw:
            return default
        try:
            return parse_duration(raw[key])
        except ValueError as exc:
            self.problems.add((*path, key), str(exc))
            return default

    def retry(self, raw: Mapping[str, Any] | None, path: KeyPath, base: RetryPolicy) -> RetryPolicy:
        if not raw:
            return base
        policy = RetryPolicy(
            max_attempts=raw.get("max_attempts", base.max_attempts),
            initial_delay=self.duration(raw, "initial_delay", path, base.initial_delay),
            max_delay=self.duration(raw, "max_delay", path, base.max_delay),
            max_age=self.duration(raw, "max_age", path, base.max_age),
        )
        if policy.max_delay < policy.initial_delay:
            self.problems.add((*path, "max_delay"), "must not be less than initial_delay")
        return policy

    def destination(self, raw: Mapping[str, Any], path: KeyPath, retry: RetryPolicy,
                    breaker: BreakerPolicy) -> Destination:
        if (problem := destination_url_problem(raw["url"])) is not None:
            self.problems.add((*path, "url"), f"{redact_url(raw['url'])!r} {problem}")
        elif not is_broker(raw["url"]):
            self.url(raw["url"], path)
        body, problems = templates.from_config(raw)
        for sub, message in problems:
            self.problems.add((*path, *sub), message)
        return Destination(
            name=raw["name"],
            url=raw["url"],
            secret=self.secret(raw, path),
            timeout=self.duration(raw, "timeout", path, c.DEFAULT_TIMEOUT_S),
            format=raw.get("format", "json"),
            include_signature=raw.get("include_signature", False),
            headers=tuple(sorted((raw.get("headers") or {}).items())),
            max_in_flight=raw.get("max_in_flight", c.DEFAULT_MAX_IN_FLIGHT),
            retry=self.retry(raw.get("retry"), (*path, "retry"), retry),
            breaker=self.breaker(raw.get("breaker", ...), (*path, "breaker"), breaker),
            rate=self.rate(raw, path),
            order=raw.get("order"),
            body=body,
        )

    def url(self, url: str, path: KeyPath) -> None:
        shown = redact_url(url)
        try:
            if not yarl.URL(url).host:
                self.problems.add((*path, "url"), f"{shown!r} has no host")
            elif (problem := url_problem(url)) is not None:
                # yarl reads more than the delivery client sends to (``http://a|b.com/``)
                raise ValueError(problem)
        except ValueError as exc:
            self.problems.add((*path, "url"), f"{shown!r} is not a valid URL: "
                              f"{redact_text(str(exc), url)}")

    def breaker(self, raw: Any, path: KeyPath, base: BreakerPolicy) -> BreakerPolicy:
        if raw is ...:
            return base
        if raw in ("off", False):
            return BreakerPolicy(after=None, probe=base.probe)
        return BreakerPolicy(after=raw.get("after", c.DEFAULT_BREAKER_AFTER),
                             probe=self.duration(raw, "probe", path, c.DEFAULT_BREAKER_PROBE_S))

    def rate(self, raw: Mapping[str, Any], path: KeyPath) -> float | None:
        if raw.get("rate") is None:
            return None
        try:
            return parse_rate(raw["rate"])
        except ValueError as exc:
            self.problems.add((*path, "rate"), str(exc))
            return None

    def alerts(self, raw: list[dict[str, Any]]) -> tuple[AlertTarget, ...]:
        targets = []
        for index, item in enumerate(raw):
            path: KeyPath = ("alerts", index)
            self.url(item["url"], path)
            targets.append(AlertTarget(
                name=item["name"], url=item["url"], format=item.get("format", "json"),
                secret=self.secret(item, path),
                kinds=frozenset(item.get("kinds") or c.ALERT_KINDS),
                timeout=self.duration(item, "timeout", path, c.DEFAULT_ALERT_TIMEOUT_S)))
        return tuple(targets)

    def secret(self, raw: Mapping[str, Any], path: KeyPath) -> str | None:
        secret = raw.get("secret") or None
        if secret is not None and (problem := secret_problem(secret)) is not None:
            self.problems.add((*path, "secret"), problem)
        return secret

    def routes(self, raw: list[dict[str, Any]], retry: RetryPolicy,
               breaker: BreakerPolicy) -> tuple[Route, ...]:
        routes: list[Route] = []
        by_name: dict[str, Destination] = {}
        route_names: set[str] = set()
        for index, item in enumerate(raw):
            path: KeyPath = ("routes", index)
            if item["name"] in route_names:
                self.problems.add((*path, "name"), f"duplicate route name {item['name']!r}")
            route_names.add(item["name"])
            match_raw = item.get("match") or {}
            fields, problems = conditions.from_config(match_raw)
            for sub, message in problems:
                self.problems.add((*path, "match", *sub), message)
            match = Match(
                product=_matcher(match_raw.get("product")),
                event=_matcher(match_raw.get("event")),
                tag=_tag_matcher(match_raw),
                fields=fields,
            )
            destinations = []
            for d_index, d_raw in enumerate(item["destinations"]):
                d_path: KeyPath = (*path, "destinations", d_index)
                dest = self.destination(d_raw, d_path, retry, breaker)
                known = by_name.setdefault(dest.name, dest)
                if known != dest:
                    self.problems.add(
                        (*d_path, "name"),
                        f"destination {dest.name!r} is defined twice with different settings "
                        "(one name is one destination: repeat it identically or rename it)",
                    )
                destinations.append(dest)
            routes.append(Route(name=item["name"], match=match, destinations=tuple(destinations)))
        return tuple(routes)

    def subhooks(self, raw: list[dict[str, Any]]) -> tuple[Subhook, ...]:
        seen: set[str] = set()
        subhooks = []
        for index, item in enumerate(raw):
            if item["path"] in seen:
                self.problems.add(("subhooks", index, "path"), f"duplicate path {item['path']!r}")
            seen.add(item["path"])
            keys = tuple(item["keys"])
            for k_index, key in enumerate(keys):
                if not key.strip():
                    self.problems.add(("subhooks", index, "keys", k_index),
                                      "key is empty or blank")
            allow = tuple(item.get("allow_ips", ()))
            self.cidrs(allow, ("subhooks", index, "allow_ips"))
            subhooks.append(Subhook(item["path"], item["product"], keys, allow))
        return tuple(subhooks)

    def cidrs(self, values: tuple[str, ...], path: KeyPath) -> None:
        for index, value in enumerate(values):
            try:
                ip_network(value, strict=False)
            except ValueError:
                self.problems.add((*path, index), f"{value!r} is not an IP address or CIDR")

    def limits(self, raw: Mapping[str, Any]) -> Limits:
        base = Limits()
        return Limits(
            max_body_size=parse_size(raw.get("max_body_size", base.max_body_size)),
            max_header_size=parse_size(raw.get("max_header_size", base.max_header_size)),
            max_fields=raw.get("max_fields", base.max_fields),
            read_timeout=self.duration(raw, "read_timeout", ("limits",), base.read_timeout),
            max_in_progress=raw.get("max_in_progress", base.max_in_progress),
            max_connections=raw.get("max_connections", base.max_connections),
            max_connections_per_address=raw.get("max_connections_per_address",
                                                base.max_connections_per_address),
            max_admin_connections=raw.get("max_admin_connections",
                                          base.max_admin_connections),
            idle_timeout=self.duration(raw, "idle_timeout", ("limits",), base.idle_timeout),
            max_buffered=parse_size(raw.get("max_buffered", base.max_buffered)),
        )


def _resolve(base: Path | None, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    return path if path.is_absolute() or base is None else base / path


#: Checks a caller adds (the route matchers against the event schemas): each finds
#: (key path, problem) pairs in settings built, reported with their lines in the same run.
Vet = Callable[[Settings], list[tuple[KeyPath, str]]]


def parse_config(text: str, env: Mapping[str, str] | None = None,
                 source: str = "<config>", base_dir: Path | None = None,
                 vet: Vet | None = None) -> Settings:
    """Settings from YAML text; raises ConfigError listing every problem it can find in one
    run: the schema's, the ones building finds, and ``vet``'s, each with its line."""
    env = os.environ if env is None else env
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{source}: over {MAX_CONFIG_BYTES} bytes; not a config"])
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        # Build the values from the same node tree the line map reads: the text is parsed once.
        raw = None if node is None else yaml.SafeLoader("").construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError([yaml_problem(source, exc)]) from exc
    lines: dict[KeyPath, int] = {}
    if node is not None:
        try:
            line_map(node, (), lines)
        except ConfigError as exc:
            raise ConfigError([f"{source}: {p}" for p in exc.problems]) from None
    problems = Problems(lines, source)
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: the config must be a mapping of keys"])
    data = expand(raw, env, (), problems)
    if problems.items:
        raise ConfigError(problems.items)
    against_schema(data, problems)
    settings = _build_anyway(data, problems, base_dir)
    if settings is not None:
        # the line map goes with the settings: checks made later (routes against the
        # schemas' fields) name their lines too
        settings = replace(settings, lines=lines)
    if settings is not None and vet is not None:
        for path, problem in vet(settings):
            problems.add(path, problem)
    if problems.items:
        raise ConfigError(problems.items)
    assert settings is not None  # built, or a problem was raised above
    return settings


def _build_anyway(data: dict[str, Any], problems: Problems,
                  base_dir: Path | None) -> Settings | None:
    """Settings built even beside schema problems, so the problems only settings show are
    found in the same run; None when the schema's problems leave too little to build on."""
    invalid = set(problems.paths)
    found = Unrepeated(problems, invalid)
    try:
        return _build(data, _Builder(found), base_dir)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        if not invalid:
            raise
        return None


def _address(builder: _Builder, key: str, value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not 0 <= int(port) < 65536:
        builder.problems.add((key,), f"port {port} is out of range")
    return host.strip("[]"), int(port)


def _build(data: dict[str, Any], builder: _Builder, base_dir: Path | None) -> Settings:
    host, port = _address(builder, "listen", data.get("listen", c.DEFAULT_LISTEN))
    admin_listen = data.get("admin_listen")
    retry = builder.retry(data.get("retry"), ("retry",), RetryPolicy())
    breaker = builder.breaker(data.get("breaker", ...), ("breaker",), BreakerPolicy())
    window = data.get("replay_window") or {}
    tls = data.get("tls") or {}
    log = data.get("log") or {}
    retention = data.get("retention") or {}
    builder.cidrs(tuple(data.get("trusted_proxies", ())), ("trusted_proxies",))
    settings = Settings(
        subhooks=builder.subhooks(data["subhooks"]),
        routes=builder.routes(data["routes"], retry, breaker),
        listen_host=host,
        listen_port=port,
        admin_listen=None if admin_listen is None else _address(builder, "admin_listen",
                                                                admin_listen),
        store=data.get("store", c.DEFAULT_STORE),
        schemas_dir=_resolve(base_dir, data.get("schemas_dir")),
        retry=retry,
        breaker=breaker,
        alerts=builder.alerts(data.get("alerts") or []),
        replay_past=builder.duration(window, "past", ("replay_window",), c.DEFAULT_REPLAY_PAST_S),
        replay_future=builder.duration(
            window, "future", ("replay_window",), c.DEFAULT_REPLAY_FUTURE_S
        ),
        limits=builder.limits(data.get("limits") or {}),
        admin_token=(data.get("admin") or {}).get("token") or None,
        admin_tokens=builder.admin_tokens(data.get("admin") or {}),
        tls_cert=_resolve(base_dir, tls.get("cert")),
        tls_key=_resolve(base_dir, tls.get("key")),
        trusted_proxies=tuple(data.get("trusted_proxies", ())),
        log_level=log.get("level", "info"),
        log_format=log.get("format", "text"),
        # ``mask_phone_numbers``: the key's name before mail had email addresses
        mask_contacts=log.get("mask_contacts", log.get("mask_phone_numbers", True)),
        retention_delivered=builder.duration(retention, "delivered", ("retention",),
                                             c.DEFAULT_RETENTION_DELIVERED_S),
        retention_interval=builder.duration(retention, "interval", ("retention",),
                                            c.DEFAULT_RETENTION_INTERVAL_S),
        retention_tokens=builder.duration(retention, "tokens", ("retention",),
                                          c.DEFAULT_RETENTION_TOKENS_S),
        lease_margin=builder.duration(data, "lease_margin", (), c.DEFAULT_LEASE_MARGIN_S),
    )
    span = settings.replay_past + settings.replay_future
    if settings.retention_tokens < span:
        # a token forgotten while its push is still inside the window can be replayed with
        # other fields and forwarded (SPEC 16, 18)
        builder.problems.add(("retention", "tokens"), (
            f"{settings.retention_tokens:g}s is shorter than the replay window it must "
            f"outlast (replay_window.past + future: {span:g}s)"))
    return settings


def load_config(path: Path, env: Mapping[str, str] | None = None,
                vet: Vet | None = None) -> Settings:
    """Settings from a file; relative paths in it are relative to the file's folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    settings = parse_config(text, env, source=str(path), base_dir=path.parent, vet=vet)
    return replace(settings, source=path)
