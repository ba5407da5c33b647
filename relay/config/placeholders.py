"""The secrets config.example.yaml publishes, and where a config still uses them (SPEC 18).

The example runs as it is on a fresh machine: its SUBHOOK keys and destination secret
default to values anyone can read. On loopback that is the quick start; on any other
address it would accept forged pushes and sign what it forwards with a published secret,
so ``relay serve`` refuses to start there (and a reload refuses such a config) while one
is in use, naming the variable that sets it and never its value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from ipaddress import ip_address

from relay.config.settings import Settings

#: Each published placeholder and the variable config.example.yaml sets it with
#: (tests/test_config.py keeps this in step with the file).
PUBLISHED: Mapping[str, str] = {
    "example-sms-subhook-key": "SUBHOOK_SMS_KEY",
    "example-intersms-subhook-key": "SUBHOOK_INTERSMS_KEY",
    "example-mms-subhook-key": "SUBHOOK_MMS_KEY",
    "example-mail-subhook-key": "SUBHOOK_MAIL_KEY",
    "example-voice-subhook-key": "SUBHOOK_VOICE_KEY",
    "example-shorturl-subhook-key": "SUBHOOK_SHORTURL_KEY",
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw": "ORDERS_WEBHOOK_SECRET",
}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (of ``listen``) is reached only from this machine; an empty host or
    a name other than localhost is taken as reachable from elsewhere."""
    if host.lower() == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _secrets(settings: Settings) -> Iterator[tuple[str, str]]:
    """(what it is, value) of every secret of the config."""
    for i, subhook in enumerate(settings.subhooks):
        for j, key in enumerate(subhook.keys):
            yield f"the key of {subhook.path} (subhooks[{i}].keys[{j}])", key
    for i, route in enumerate(settings.routes):
        for j, destination in enumerate(route.destinations):
            if destination.secret:
                yield (f"the secret of destination {destination.name} "
                       f"(routes[{i}].destinations[{j}].secret)"), destination.secret
    for entry in settings.admin_tokens:
        yield f"the admin token of {entry.name}", entry.token


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _advice(value: str, text: str) -> str:
    """What to change: the variable(s) whose default in the config ``text`` is ``value``,
    or the config itself where it writes ``value`` out, else the environment."""
    variables = sorted({m.group(1) for m in _VARIABLE.finditer(text) if m.group(2) == value})
    written = value in _VARIABLE.sub("", text)
    if variables and not written:
        return f"set {' or '.join(variables)}"
    if written:
        return ("replace it where the config writes it out"
                + (f" (or set {' or '.join(variables)})" if variables else ""))
    return ("set your own in the config or its variable (config.example.yaml sets it with "
            f"{PUBLISHED[value]})")


def published_in_use(settings: Settings, text: str = "") -> list[str]:
    """One line per secret of ``settings`` that is a published placeholder, naming what it
    is and the variable to set (``text``: the config file, to find the variable it uses)."""
    return [f"{what} is a published placeholder of config.example.yaml: {_advice(v, text)}"
            for what, v in _secrets(settings) if v in PUBLISHED]


def public_listeners(settings: Settings) -> list[str]:
    """``host:port`` of each listener that is not on a loopback address."""
    addresses = [(settings.listen_host, settings.listen_port)]
    if settings.admin_listen is not None:
        addresses.append(settings.admin_listen)
    return [f"{host}:{port}" for host, port in addresses if not is_loopback(host)]


def refusal(settings: Settings, listening: Settings | None = None) -> list[str]:
    """Why ``settings`` must not serve: every published secret it uses, when the listeners
    (of ``listening``, which a reload keeps, else its own) are not all on loopback."""
    public = public_listeners(listening or settings)
    if not public:
        return []
    text = ""
    if settings.source is not None:
        try:
            text = settings.source.read_text(encoding="utf-8")
        except OSError:
            text = ""
    found = published_in_use(settings, text)
    if not found:
        return []
    return [f"listening on {', '.join(public)} (not loopback) with secrets anyone can read "
            "would accept forged pushes:", *found]
