"""Pure: what a destination URL names (SPEC 20), and why a config cannot send to it.

    http://, https://                      an HTTP service (relay/delivery/client.py)
    nats://[user:pass@]host:port/SUBJECT   a JetStream publish to SUBJECT
    amqp://[user:pass@]host:port/[vhost]?exchange=E&routing_key=K
    redis://[:pass@]host:port/DB?stream=NAME[&maxlen=N]

No broker client is imported here: ``relay check`` reads these URLs on a relay installed
without the ``brokers`` extra, and names the extra when one is needed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import yarl

#: Schemes a destination may use; each broker's names the module its client installs.
HTTP_SCHEMES = ("http", "https")
BROKER_CLIENTS = {"nats": "nats", "amqp": "aio_pika", "redis": "redis"}
SCHEMES = (*HTTP_SCHEMES, *BROKER_CLIENTS)
DEFAULT_PORTS = {"nats": 4222, "amqp": 5672, "redis": 6379}
EXTRA_HINT = "pip install 'subhook-relay[brokers]'"

_SHAPES = {
    "nats": "nats://[user:pass@]host:port/SUBJECT",
    "amqp": "amqp://[user:pass@]host:port/[vhost]?exchange=E&routing_key=K",
    "redis": "redis://[:pass@]host:port/DB?stream=NAME[&maxlen=N]",
}
_PARAMS = {"nats": frozenset(), "amqp": frozenset({"exchange", "routing_key"}),
           "redis": frozenset({"stream", "maxlen"})}


@dataclass(frozen=True)
class BrokerTarget:
    """Where a broker destination publishes: ``server`` is the URL a client connects to
    (credentials kept, the subject, exchange or stream taken out); ``name`` is the subject,
    the exchange (empty: RabbitMQ's default exchange) or the stream."""

    scheme: str
    server: str
    name: str
    routing_key: str = ""
    maxlen: int | None = None


def scheme_of(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else ""


def is_broker(url: str) -> bool:
    return scheme_of(url) in BROKER_CLIENTS


def parse_broker(url: str) -> BrokerTarget:
    """The parts of a broker URL; ValueError naming the part that is missing or wrong (never
    quoting the URL, which may hold a password)."""
    scheme = scheme_of(url)
    if scheme not in BROKER_CLIENTS:
        raise ValueError(f"is not a broker URL (schemes: {', '.join(BROKER_CLIENTS)})")
    parsed = yarl.URL(url)
    if not parsed.host:
        raise ValueError(f"has no host ({_SHAPES[scheme]})")
    unknown = sorted(set(parsed.query) - _PARAMS[scheme])
    if unknown:
        raise ValueError(f"has an unknown query parameter {unknown[0]!r} ({_SHAPES[scheme]})")
    if len(parsed.query.getall("stream", ())) > 1 or len(parsed.query.getall("exchange", ())) > 1:
        raise ValueError("gives a query parameter twice")
    port = parsed.port or DEFAULT_PORTS[scheme]
    auth = _auth(parsed)
    path = parsed.path.removeprefix("/")
    if scheme == "nats":
        return _nats(auth, parsed.host, port, path)
    if scheme == "amqp":
        return _amqp(auth, parsed, port)
    return _redis(auth, parsed, port, path)


def _auth(parsed: yarl.URL) -> str:
    if parsed.raw_user is None and parsed.raw_password is None:
        return ""
    user = parsed.raw_user or ""
    return f"{user}:{parsed.raw_password}@" if parsed.raw_password is not None else f"{user}@"


def _host(parsed_host: str) -> str:
    return f"[{parsed_host}]" if ":" in parsed_host else parsed_host


def _nats(auth: str, host: str, port: int, subject: str) -> BrokerTarget:
    if not subject:
        raise ValueError(f"names no subject ({_SHAPES['nats']})")
    if any(c in subject for c in " \t*>/") or subject.startswith(".") or ".." in subject:
        raise ValueError("has a subject that is not a plain NATS subject (no spaces, "
                         "wildcards or '/'; dots between tokens)")
    return BrokerTarget("nats", f"nats://{auth}{_host(host)}:{port}", subject)


def _amqp(auth: str, parsed: yarl.URL, port: int) -> BrokerTarget:
    if "exchange" not in parsed.query:
        raise ValueError(f"names no exchange ({_SHAPES['amqp']}; exchange= with no name is "
                         "RabbitMQ's default exchange)")
    exchange = parsed.query["exchange"]
    routing_key = parsed.query.get("routing_key", "")
    if not exchange and not routing_key:
        raise ValueError("names the default exchange (exchange=) but no routing_key (the "
                         "queue's name)")
    assert parsed.host is not None
    server = f"amqp://{auth}{_host(parsed.host)}:{port}/{parsed.raw_path.removeprefix('/')}"
    return BrokerTarget("amqp", server, exchange, routing_key)


def _redis(auth: str, parsed: yarl.URL, port: int, db: str) -> BrokerTarget:
    stream = parsed.query.get("stream", "")
    if not stream:
        raise ValueError(f"names no stream ({_SHAPES['redis']})")
    if db and not db.isdigit():
        raise ValueError("has a path that is not a database number (redis://host:6379/0?stream=S)")
    maxlen = None
    if "maxlen" in parsed.query:
        raw = parsed.query["maxlen"]
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError("has a maxlen that is not a whole number of entries, at least 1")
        maxlen = int(raw)
    assert parsed.host is not None
    return BrokerTarget("redis", f"redis://{auth}{_host(parsed.host)}:{port}/{db or '0'}",
                        stream, maxlen=maxlen)


def missing_client(url: str) -> str | None:
    """Why a broker URL cannot be sent to by this installation (its client is not installed),
    naming the extra that installs it; None when it can."""
    scheme = scheme_of(url)
    module = BROKER_CLIENTS.get(scheme)
    if module is None or importlib.util.find_spec(module) is not None:
        return None
    return (f"needs the optional broker clients ({scheme}://), not installed here: "
            f"{EXTRA_HINT}")


def broker_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a broker destination (None when it can)."""
    try:
        parse_broker(url)
    except ValueError as exc:
        return str(exc)
    return missing_client(url)


def destination_url_problem(url: str) -> str | None:
    """Why a destination cannot have ``url`` as far as its scheme says (an unknown scheme, a
    broker URL's missing part, a broker client not installed); None when it can. An HTTP
    URL's own checks are the delivery client's (relay/delivery/client.py)."""
    scheme = scheme_of(url)
    if scheme in HTTP_SCHEMES:
        return None
    if scheme not in BROKER_CLIENTS:
        return f"has an unknown scheme {scheme!r} (one of: {', '.join(SCHEMES)})"
    return broker_url_problem(url)
