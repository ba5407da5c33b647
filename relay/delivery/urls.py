"""Destination URLs as the delivery client reads them: where to connect, the ``host`` header
and the request's target. The config checks them at load with the same reading, without
starting a client."""

from __future__ import annotations

import base64
import functools
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote

import yarl

#: A host name after IDNA encoding: letters, digits, hyphens, dots (and underscores, which
#: DNS carries and some internal names use).
_HOST_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Target:
    """One destination URL, read once."""

    #: the connection pool's key: connections are reused only within one of these
    key: tuple[str, str, int]
    #: "http" or "https"
    scheme: str
    #: what is connected to (IDNA-encoded; an IPv6 address without brackets)
    host: str
    port: int
    #: the ``host`` header: the host, and the port unless it is the scheme's own
    authority: str
    #: the request's target: path and query, as written (never the fragment)
    path: str
    #: ``Basic ...`` from the URL's user and password, when it has them
    authorization: str | None


@functools.lru_cache(maxsize=1024)
def target(url: str) -> Target:
    """Read ``url``; ValueError says why the client could not send to it."""
    parsed = yarl.URL(url)
    scheme = parsed.scheme
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported scheme {scheme!r}")
    host, port = parsed.raw_host, parsed.port
    if not host or port is None:
        raise ValueError("empty host")
    if ":" in host:
        ipaddress.IPv6Address(host)  # ValueError when it is not one
        shown = f"[{host}]"
    elif _HOST_NAME.fullmatch(host):
        shown = host
    else:
        raise ValueError("invalid international domain name")
    authority = shown if parsed.is_default_port() else f"{shown}:{port}"
    authorization = None
    if parsed.raw_user is not None:
        pair = f"{unquote(parsed.raw_user)}:{unquote(parsed.raw_password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
    return Target((scheme, host, port), scheme, host, port, authority,
                  parsed.raw_path_qs or "/", authorization)


def url_problem(url: str) -> str | None:
    """Why the delivery client could not send to ``url`` (None when it can): the config
    refuses such a destination rather than letting every delivery to it fail."""
    try:
        target(url)
    except ValueError as exc:
        return str(exc)
    return None
