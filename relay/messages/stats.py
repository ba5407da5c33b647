"""Message records as operators see them, and ``relay stats`` (SPEC 14), pure: per
product, the share delivered, request→delivered latency percentiles (SUBMAIL's own times),
and drops by class and by operator."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from relay import times


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-int(share * len(ordered) * 1000) // 1000))  # ceil without floats' noise
    return ordered[min(rank, len(ordered)) - 1]


def _latency(row: Mapping[str, Any]) -> float | None:
    """request→delivered in seconds, when both times are ones a page can show."""
    request, delivered = times.showable(row["request_at"]), times.showable(row["delivered_at"])
    return None if request is None or delivered is None else delivered - request


def outcome_latency(row: Mapping[str, Any]) -> tuple[str, float] | None:
    """(the end reached, seconds from ``request``): to ``delivered``, else to ``dropped``;
    None before either, or when a time is none a page can show."""
    request = times.showable(row["request_at"])
    for end in ("delivered", "dropped"):
        at = times.showable(row[f"{end}_at"])
        if request is not None and at is not None:
            return end, round(at - request, 3)
    return None


def stats(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """{product: {messages, delivered, delivered_share, latency_s: {p50, p90, p99},
    dropped, drops_by_class, drops_by_operator, states}}."""
    by_product: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_product.setdefault(row["product"], []).append(row)
    result = {}
    for product, found in sorted(by_product.items()):
        delivered = [r for r in found if r["delivered_at"] is not None]
        latencies = [x for x in map(_latency, delivered) if x is not None]
        failed = [r for r in found if r["delivered_at"] is None and r["reason"] is not None]
        result[product] = {
            "messages": len(found), "delivered": len(delivered),
            "delivered_share": len(delivered) / len(found),
            "latency_s": {name: percentile(latencies, share) for name, share in
                          (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))},
            "dropped": len(failed),
            "drops_by_class": dict(Counter(r["reason"] for r in failed).most_common()),
            "drops_by_operator": dict(Counter(r["operator"] or "(unknown)"
                                              for r in failed).most_common()),
            "states": dict(Counter(r["state"] for r in found).most_common())}
    return result


def hourly(rows: Iterable[Mapping[str, Any]], start: float, end: float,
           step: float = 3600.0) -> dict[str, dict[str, list[float | None]]]:
    """Per product, per ``step`` from ``start`` (by request time, else the record's last
    update): the delivered share (%) and the request→delivered p50 (s), for a chart."""
    slots = max(1, int((end - start) // step) + 1)
    grouped: dict[str, list[list[Mapping[str, Any]]]] = {}
    for row in rows:
        at = times.showable(row["request_at"]) or times.showable(row["updated_at"])
        slot = -1 if at is None else int((at - start) // step)
        if 0 <= slot < slots:
            grouped.setdefault(row["product"], [[] for _ in range(slots)])[slot].append(row)
    series: dict[str, dict[str, list[float | None]]] = {}
    at_slots: list[float | None] = [start + i * step for i in range(slots)]
    for product, buckets in sorted(grouped.items()):
        shares: list[float | None] = []
        medians: list[float | None] = []
        for bucket in buckets:
            delivered = [r for r in bucket if r["delivered_at"] is not None]
            shares.append(100.0 * len(delivered) / len(bucket) if bucket else None)
            medians.append(percentile([x for x in map(_latency, delivered) if x is not None],
                                      0.5))
        series[product] = {"time": at_slots, "delivered_share": shares, "p50_s": medians}
    return series
