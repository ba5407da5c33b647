"""Config: YAML → ``${VAR}`` expansion → JSON Schema validation → frozen dataclasses.

Every problem is reported with its key path (``routes[0].destinations[1].url``) and, where
the YAML gives it, its line. ``${VAR}`` and ``${VAR:-default}`` are expanded in string
values after parsing, so a value never changes the YAML structure; ``$$`` is a literal ``$``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import jsonschema
import yaml
import yarl

from relay import constants as c
from relay.errors import ConfigError
from relay.redact import redact_text, redact_url
from relay.routing import Match
from relay.schemas import bundled_schema_dir

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*([0-9]+)\s*(B|KiB|MiB|KB|MB|k|K|M)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "k": 1024, "K": 1024, "KiB": 1024, "KB": 1000,
               "M": 1024**2, "MiB": 1024**2, "MB": 1000**2}
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Path_ = tuple[str | int, ...]


def parse_duration(value: float | str) -> float:
    """Seconds in ``250ms``, ``1s``, ``10m``, ``48h``, ``2d`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration must not be negative: {value!r}")
        return float(value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"not a duration: {value!r} (use 250ms, 1s, 10m, 48h or seconds)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_size(value: int | str) -> int:
    """Bytes in ``65536``, ``64KiB``, ``1MiB``."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"not a size: {value!r} (use 65536, 64KiB or 1MiB)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = c.DEFAULT_MAX_ATTEMPTS
    initial_delay: float = c.DEFAULT_INITIAL_DELAY_S
    max_delay: float = c.DEFAULT_MAX_DELAY_S
    max_age: float = c.DEFAULT_MAX_AGE_S


@dataclass(frozen=True)
class Destination:
    name: str
    url: str
    secret: str | None = field(default=None, repr=False)
    timeout: float = c.DEFAULT_TIMEOUT_S
    format: str = "json"
    #: keep SUBMAIL's token and signature in the forwarded JSON body (off: they are a
    #: credential for ever, SPEC 16)
    include_signature: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    max_in_flight: int = c.DEFAULT_MAX_IN_FLIGHT
    retry: RetryPolicy = RetryPolicy()


@dataclass(frozen=True)
class Route:
    name: str
    match: Match
    destinations: tuple[Destination, ...]


@dataclass(frozen=True)
class Subhook:
    path: str
    product: str
    keys: tuple[str, ...] = field(repr=False)
    allow_ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limits:
    max_body_size: int = 1024 * 1024
    max_header_size: int = 8190
    max_fields: int = 200
    read_timeout: float = 10.0
    #: verified pushes being stored at once; more are shed with 503 (memory and latency)
    max_in_progress: int = 256
    #: open connections over both listeners; more are closed as soon as they are accepted
    max_connections: int = 1024
    #: a connection that sends no complete request this long is closed
    idle_timeout: float = 15.0
    #: bytes of bodies being read (not yet verified) held at once; more: 503 at once
    max_buffered: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """A loaded, checked config; nothing in it is ever mutated."""

    subhooks: tuple[Subhook, ...]
    routes: tuple[Route, ...]
    listen_host: str = "0.0.0.0"  # noqa: S104 - an edge gateway listens on every interface
    listen_port: int = 8080
    store: str = c.DEFAULT_STORE
    schemas_dir: Path | None = None
    retry: RetryPolicy = RetryPolicy()
    replay_past: float = c.DEFAULT_REPLAY_PAST_S
    replay_future: float = c.DEFAULT_REPLAY_FUTURE_S
    limits: Limits = Limits()
    admin_token: str | None = field(default=None, repr=False)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    trusted_proxies: tuple[str, ...] = ()
    log_level: str = "info"
    log_format: str = "text"
    #: ``(host, port)`` of the private listener for /metrics and /admin; None: on ``listen``
    admin_listen: tuple[str, int] | None = None
    mask_phone_numbers: bool = True
    #: delivered events are kept this long (never less than the replay window, which
    #: identity dedupe needs), then pruned every ``retention_interval``
    retention_delivered: float = c.DEFAULT_RETENTION_DELIVERED_S
    retention_interval: float = c.DEFAULT_RETENTION_INTERVAL_S
    #: a token once seen is refused this long (SPEC 16)
    retention_tokens: float = c.DEFAULT_RETENTION_TOKENS_S
    #: how long past a destination's timeout a claimed delivery stays leased; on PostgreSQL
    #: the leases of an instance that stopped heartbeating are void sooner (15 s)
    lease_margin: float = c.DEFAULT_LEASE_MARGIN_S
    source: Path | None = None

    def destinations(self) -> dict[str, Destination]:
        """Every destination by name (one name is one destination across routes)."""
        return {d.name: d for r in self.routes for d in r.destinations}

    def subhook_for(self, path: str) -> Subhook | None:
        return next((s for s in self.subhooks if s.path == path), None)


def dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


#: Values a config may hold once YAML aliases are followed: a few "billion laughs" lines
#: would otherwise expand into gigabytes (a real config holds hundreds).
MAX_CONFIG_VALUES = 100_000
MAX_CONFIG_BYTES = 1024 * 1024


def _line_map(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    if len(lines) >= MAX_CONFIG_VALUES:
        raise ConfigError([f"the config holds more than {MAX_CONFIG_VALUES} values once its "
                           "YAML aliases are followed"])
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value
            _line_map(value, (*path, name), lines)
            # The key's own line reads better than where its value starts.
            lines[(*path, name)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _line_map(item, (*path, index), lines)


class _Problems:
    """Collects problems, each with its key path and line; ``items`` in file order."""

    def __init__(self, lines: Mapping[Path_, int], source: str) -> None:
        self.lines = lines
        self.source = source
        self._found: list[tuple[int, str]] = []

    @property
    def items(self) -> list[str]:
        return [text for _, text in sorted(self._found, key=lambda item: item[0])]

    def add(self, path: Path_, message: str) -> None:
        probe = path
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe)
        where = f"{self.source}:{line}: " if line else f"{self.source}: "
        self._found.append((line or 0, f"{where}{dotted(path)}: {message}"))


def _expand(value: Any, env: Mapping[str, str], path: Path_, problems: _Problems) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, env, (*path, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, (*path, i), problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        problems.add(path, f"environment variable {name} is not set (and has no :-default)")
        return ""

    return _VARIABLE.sub(substitute, value)


def _config_validator() -> jsonschema.Draft202012Validator:
    schema_file = bundled_schema_dir() / c.CONFIG_SCHEMA_FILE
    return jsonschema.Draft202012Validator(json.loads(schema_file.read_text(encoding="utf-8")))


#: Keys whose values are secrets: a problem with one never quotes the value (SPEC 16).
SECRET_KEYS = frozenset({"keys", "secret", "token", "headers"})
#: Keys whose values are URLs that may carry a password: quoted with it masked.
URL_KEYS = frozenset({"store", "url"})

_RULES = {"type": "must be of type {}", "minLength": "must be at least {} character(s)",
          "minItems": "must have at least {} item(s)", "enum": "must be one of {}",
          "minimum": "must be at least {}", "maximum": "must be at most {}"}


def _schema_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    path = set(map(str, error.absolute_path))
    if path & SECRET_KEYS:
        rule = _RULES.get(str(error.validator), "is not a valid value{}")
        return f"{rule.format(error.validator_value if rule.count('{}') else '')} (value hidden)"
    if path & URL_KEYS and isinstance(error.instance, str):
        return str(error.message).replace(repr(error.instance),
                                          repr(redact_url(error.instance)))
    if error.validator in ("anyOf", "oneOf"):
        return f"invalid value {error.instance!r}"
    return str(error.message)


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

    def __init__(self, problems: _Problems) -> None:
        self.problems = problems

    def duration(self, raw: Mapping[str, Any], key: str, path: Path_, default: float) -> float:
        if key not in raw:
            return default
        try:
            return parse_duration(raw[key])
        except ValueError as exc:
            self.problems.add((*path, key), str(exc))
            return default

    def retry(self, raw: Mapping[str, Any] | None, path: Path_, base: RetryPolicy) -> RetryPolicy:
        if not raw:
            return base
        policy = RetryPolicy(
            max_attempts=int(raw.get("max_attempts", base.max_attempts)),
            initial_delay=self.duration(raw, "initial_delay", path, base.initial_delay),
            max_delay=self.duration(raw, "max_delay", path, base.max_delay),
            max_age=self.duration(raw, "max_age", path, base.max_age),
        )
        if policy.max_delay < policy.initial_delay:
            self.problems.add((*path, "max_delay"), "must not be less than initial_delay")
        return policy

    def destination(self, raw: Mapping[str, Any], path: Path_, retry: RetryPolicy) -> Destination:
        shown = redact_url(raw["url"])
        try:
            if not yarl.URL(raw["url"]).host:
                self.problems.add((*path, "url"), f"{shown!r} has no host")
        except ValueError as exc:
            self.problems.add((*path, "url"), f"{shown!r} is not a valid URL: "
                              f"{redact_text(str(exc), raw['url'])}")
        return Destination(
            name=raw["name"],
            url=raw["url"],
            secret=raw.get("secret") or None,
            timeout=self.duration(raw, "timeout", path, c.DEFAULT_TIMEOUT_S),
            format=raw.get("format", "json"),
            include_signature=raw.get("include_signature", False),
            headers=tuple(sorted((raw.get("headers") or {}).items())),
            max_in_flight=raw.get("max_in_flight", c.DEFAULT_MAX_IN_FLIGHT),
            retry=self.retry(raw.get("retry"), (*path, "retry"), retry),
        )

    def routes(self, raw: list[dict[str, Any]], retry: RetryPolicy) -> tuple[Route, ...]:
        routes: list[Route] = []
        by_name: dict[str, Destination] = {}
        route_names: set[str] = set()
        for index, item in enumerate(raw):
            path: Path_ = ("routes", index)
            if item["name"] in route_names:
                self.problems.add((*path, "name"), f"duplicate route name {item['name']!r}")
            route_names.add(item["name"])
            match_raw = item.get("match") or {}
            match = Match(
                product=_matcher(match_raw.get("product")),
                event=_matcher(match_raw.get("event")),
                tag=_tag_matcher(match_raw),
            )
            destinations = []
            for d_index, d_raw in enumerate(item["destinations"]):
                d_path: Path_ = (*path, "destinations", d_index)
                dest = self.destination(d_raw, d_path, retry)
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

    def cidrs(self, values: tuple[str, ...], path: Path_) -> None:
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
            idle_timeout=self.duration(raw, "idle_timeout", ("limits",), base.idle_timeout),
            max_buffered=parse_size(raw.get("max_buffered", base.max_buffered)),
        )


def _resolve(base: Path | None, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    return path if path.is_absolute() or base is None else base / path


def parse_config(text: str, env: Mapping[str, str] | None = None,
                 source: str = "<config>", base_dir: Path | None = None) -> Settings:
    """Settings from YAML text; raises ConfigError listing every problem."""
    env = os.environ if env is None else env
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{source}: over {MAX_CONFIG_BYTES} bytes; not a config"])
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        # Build the values from the same node tree the line map reads: the text is parsed once.
        raw = None if node is None else yaml.SafeLoader("").construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: not valid YAML: {exc}"]) from exc
    lines: dict[Path_, int] = {}
    if node is not None:
        try:
            _line_map(node, (), lines)
        except ConfigError as exc:
            raise ConfigError([f"{source}: {p}" for p in exc.problems]) from None
    problems = _Problems(lines, source)
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: the config must be a mapping of keys"])
    data = _expand(raw, env, (), problems)
    if problems.items:
        raise ConfigError(problems.items)
    for error in sorted(_config_validator().iter_errors(data), key=lambda e: list(e.path)):
        if error.validator == "additionalProperties":
            known = error.schema.get("properties", {})
            for key in sorted(k for k in error.instance if k not in known):
                problems.add((*error.absolute_path, key), "unknown key")
        else:
            problems.add(tuple(error.absolute_path), _schema_message(error))
    if problems.items:
        raise ConfigError(problems.items)
    settings = _build(data, _Builder(problems), base_dir)
    if problems.items:
        raise ConfigError(problems.items)
    return settings


def _address(builder: _Builder, key: str, value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not 0 <= int(port) < 65536:
        builder.problems.add((key,), f"port {port} is out of range")
    return host.strip("[]"), int(port)


def _build(data: dict[str, Any], builder: _Builder, base_dir: Path | None) -> Settings:
    host, port = _address(builder, "listen", data.get("listen", c.DEFAULT_LISTEN))
    admin_listen = data.get("admin_listen")
    retry = builder.retry(data.get("retry"), ("retry",), RetryPolicy())
    window = data.get("replay_window") or {}
    tls = data.get("tls") or {}
    log = data.get("log") or {}
    retention = data.get("retention") or {}
    builder.cidrs(tuple(data.get("trusted_proxies", ())), ("trusted_proxies",))
    return Settings(
        subhooks=builder.subhooks(data["subhooks"]),
        routes=builder.routes(data["routes"], retry),
        listen_host=host,
        listen_port=port,
        admin_listen=None if admin_listen is None else _address(builder, "admin_listen",
                                                                admin_listen),
        store=data.get("store", c.DEFAULT_STORE),
        schemas_dir=_resolve(base_dir, data.get("schemas_dir")),
        retry=retry,
        replay_past=builder.duration(window, "past", ("replay_window",), c.DEFAULT_REPLAY_PAST_S),
        replay_future=builder.duration(
            window, "future", ("replay_window",), c.DEFAULT_REPLAY_FUTURE_S
        ),
        limits=builder.limits(data.get("limits") or {}),
        admin_token=(data.get("admin") or {}).get("token") or None,
        tls_cert=_resolve(base_dir, tls.get("cert")),
        tls_key=_resolve(base_dir, tls.get("key")),
        trusted_proxies=tuple(data.get("trusted_proxies", ())),
        log_level=log.get("level", "info"),
        log_format=log.get("format", "text"),
        mask_phone_numbers=log.get("mask_phone_numbers", True),
        retention_delivered=builder.duration(retention, "delivered", ("retention",),
                                             c.DEFAULT_RETENTION_DELIVERED_S),
        retention_interval=builder.duration(retention, "interval", ("retention",),
                                            c.DEFAULT_RETENTION_INTERVAL_S),
        retention_tokens=builder.duration(retention, "tokens", ("retention",),
                                          c.DEFAULT_RETENTION_TOKENS_S),
        lease_margin=builder.duration(data, "lease_margin", (), c.DEFAULT_LEASE_MARGIN_S),
    )


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from a file; relative paths in it are relative to the file's folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    settings = parse_config(text, env, source=str(path), base_dir=path.parent)
    return replace(settings, source=path)
