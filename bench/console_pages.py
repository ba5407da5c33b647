"""How long each console page takes to answer (SPEC 13, issue "The console": within 200 ms
with a million events stored): signed in once, each page asked ``rounds`` times in turn,
the time to the whole answer measured, medians, p90 and max per page.

Used by bench.py's million-row phase, on the relay it runs over the populated store.
"""

from __future__ import annotations

import http.cookiejar
import statistics
import time
import urllib.parse
import urllib.request
from typing import Any

#: The token bench.py's configs give the console (an operator).
TOKEN = "bench-console-token-0123456789"  # noqa: S105 (the bench's own throwaway store)


def pages(event_id: int, send_id: str) -> dict[str, str]:
    return {"overview": "/console/", "events": "/console/events",
            "events by send_id": f"/console/events?send_id={send_id}",
            "events delivered": "/console/events?state=delivered",
            "events dead": "/console/events?state=dead",
            "one event": f"/console/events/{event_id}",
            "dead letters": "/console/dead", "quarantine": "/console/quarantine",
            "destinations": "/console/destinations",
            "routes, explained": "/console/routes?product=sms&event=delivered"}


def time_pages(base: str, event_id: int, send_id: str, rounds: int) -> dict[str, Any]:
    """{page: {median_ms, p90_ms, max_ms, bytes}} for each page, after one sign-in."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = urllib.parse.urlencode({"token": TOKEN, "next": "/console/"}).encode()
    with opener.open(base + "/console/signin", data=form, timeout=30) as response:
        if "Sign out" not in response.read().decode():
            raise RuntimeError("console sign-in failed")
    taken: dict[str, list[float]] = {name: [] for name in pages(event_id, send_id)}
    sizes: dict[str, int] = {}
    for _ in range(rounds):
        for name, path in pages(event_id, send_id).items():
            started = time.perf_counter()
            with opener.open(base + path, timeout=30) as response:
                body = response.read()
                if response.status != 200:
                    raise RuntimeError(f"{path}: {response.status}")
            taken[name].append((time.perf_counter() - started) * 1000)
            sizes[name] = len(body)
    return {name: {"median_ms": statistics.median(ms),
                   "p90_ms": sorted(ms)[max(0, int(len(ms) * 0.9) - 1)],
                   "max_ms": max(ms), "bytes": sizes[name]} for name, ms in taken.items()}
