"""``relay sink``: a local service standing in for a destination, to try a deployment.

It prints one line per forwarded event (product/event, webhook-id, attempt, masked contact)
and, given the destination's ``whsec_`` secret, whether the Standard Webhooks signature
verifies; a request that does not verify is answered 401. Every printed value is escaped.
"""

from __future__ import annotations

import errno
import hmac
import re
import sys
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TextIO

from aiohttp import web

from relay.delivery import client as wire
from relay.errors import PushRejected
from relay.products import PRODUCTS
from relay.pushes import read_push
from relay.whsec import secret_problem

DEFAULT_LISTEN = "127.0.0.1:9001"
TOLERANCE = 300  # seconds either side of now, as the Standard Webhooks libraries allow
SHOWN = 120  # longest value printed, in characters
_PLAIN = re.compile(r"[^\s\"'\\=]+")


def show(value: object) -> str:
    """One printable token: plain when safe, else quoted with every control char escaped."""
    text = "-" if value is None or value == "" else str(value)
    if len(text) > SHOWN:
        text = text[:SHOWN] + "…"
    return text if text.isprintable() and _PLAIN.fullmatch(text) else repr(text)


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> str | None:
    """Why the request's Standard Webhooks signature does not verify, or None when it does."""
    missing = [h for h in (wire.H_ID, wire.H_TIMESTAMP, wire.H_SIGNATURE) if not headers.get(h)]
    if missing:
        return "missing header " + ", ".join(missing)
    stamp = headers[wire.H_TIMESTAMP].strip()
    if not re.fullmatch(r"[0-9]{1,12}", stamp):
        return f"{wire.H_TIMESTAMP} is not a UNIX time in seconds"
    age = int(now) - int(stamp)
    if abs(age) > TOLERANCE:
        side = "old" if age > 0 else "new"
        return f"timestamp too {side} ({abs(age)} s, tolerance {TOLERANCE} s)"
    return _signature_problem(secret, headers[wire.H_ID], int(stamp), body,
                              headers[wire.H_SIGNATURE].split())


def _signature_problem(secret: str, msg_id: str, stamp: int, body: bytes,
                       given: list[str]) -> str | None:
    try:
        expected = wire.standard_webhook_signature(secret, msg_id, stamp, body).encode()
    except UnicodeEncodeError:  # header bytes that are not UTF-8 arrive as surrogates
        return f"{wire.H_ID} is not valid UTF-8"
    signatures = [s.encode("utf-8", "surrogateescape") for s in given]
    if any(hmac.compare_digest(expected, s) for s in signatures):
        return None
    if not any(s.startswith(b"v1,") for s in signatures):
        return f"no v1 signature in {wire.H_SIGNATURE}"
    return "bad signature (body, id or timestamp changed, or another secret)"


def create_sink_app(secret: str | None, out: TextIO) -> web.Application:
    """An app answering POST on any path: one line to ``out`` per request, then 200 or 401."""
    if secret is not None and (problem := secret_problem(secret)):
        raise ValueError(f"the secret {problem}")

    async def receive(request: web.Request) -> web.Response:
        body, headers = await request.read(), request.headers
        try:
            fields = read_push("POST", headers.get("Content-Type", ""), body, "", 1000)
        except (PushRejected, ValueError):
            fields = {}  # not one flat event: the line shows what the headers say
        product = PRODUCTS.get(headers.get(wire.H_PRODUCT, ""))
        contact = product.masked(fields) if product else None
        parts = [
            datetime.now().isoformat(timespec="seconds"),
            show(headers.get(wire.H_PRODUCT)) + "/"
            + show(headers.get(wire.H_EVENT) or fields.get("events")),
            show(headers.get(wire.H_ID)),
            "attempt=" + show(headers.get(wire.H_ATTEMPT)),
            "contact=" + show(contact),
        ]
        problem = None if secret is None else verify(secret, headers, body, time.time())
        if secret is not None:
            parts.append("signature=" + ("ok" if problem is None else "INVALID"))
        parts.append("path=" + show(request.path))
        if problem is not None:
            parts.append("reason=" + show(problem))
        _emit(out, " ".join(parts))
        if problem is not None:
            return web.json_response({"status": "error", "error": "invalid_signature",
                                      "problems": [problem]}, status=401)
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("POST", "/{tail:.*}", receive)
    return app


def _emit(out: TextIO, line: str) -> None:
    try:
        out.write(line + "\n")
    except UnicodeEncodeError:  # a terminal that cannot show some character
        out.write(line.encode("ascii", "backslashreplace").decode("ascii") + "\n")
    out.flush()


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9001`` for IPv6) → (host, port); ValueError when unusable."""
    host, sep, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isascii() or not port.isdigit() \
            or not 0 < int(port) < 65536:
        raise ValueError(f"--listen must be host:port, e.g. {DEFAULT_LISTEN} (got {listen!r})")
    return host, int(port)


def run_sink(listen: str = DEFAULT_LISTEN, secret: str | None = None) -> int:
    """Serve until SIGINT/SIGTERM (0); 1 when the address cannot be bound, 2 on bad input."""
    try:
        host, port = parse_listen(listen)
        app = create_sink_app(secret, sys.stdout)
    except ValueError as exc:
        print(f"relay sink: {exc}", file=sys.stderr)
        return 2
    shown = f"[{host}]" if ":" in host else host
    checked = "checked with the given secret" if secret else "not checked"
    started = f"relay sink listening on http://{shown}:{port}, signatures {checked}"
    try:
        web.run_app(app, host=host, port=port, access_log=None, shutdown_timeout=2.0,
                    print=lambda *_: _emit(sys.stdout, started))
    except OSError as exc:
        why = "address already in use" if exc.errno == errno.EADDRINUSE else \
            exc.strerror or str(exc)
        print(f"relay sink: cannot listen on {shown}:{port}: {why}", file=sys.stderr)
        return 1
    return 0
