"""What the console's overview draws: the relay's counters asked of its Metrics, and a
sample of them every ``SAMPLE_S`` kept for an hour, turned into per-minute rates.

The figures are this instance's (as its /metrics are): with several instances on
PostgreSQL each console shows the traffic of the instance it is served by, and the store's
figures (queues, dead letters, quarantine) for all of them.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from relay.delivery.client import Kind
from relay.metrics import Metrics

SAMPLE_S = 10.0
KEEP = 360  # an hour of samples


@dataclass(frozen=True)
class Totals:
    """Counters since the relay started."""

    accepted: float
    refused: Mapping[str, float]  # outcome -> count, for every outcome but accepted
    delivered: float
    failed: float

    @classmethod
    def read(cls, metrics: Metrics) -> Totals:
        outcomes = metrics.pushes_by_outcome()
        attempts = metrics.attempts_by_destination()
        return cls(outcomes.pop("accepted", 0.0), outcomes,
                   sum(v for (_, k), v in attempts.items() if k == Kind.DELIVERED),
                   sum(v for (_, k), v in attempts.items() if k != Kind.DELIVERED))


@dataclass(frozen=True)
class DestinationFigures:
    attempts: float
    delivered: float
    mean_ms: float | None

    @property
    def success_rate(self) -> float | None:
        return self.delivered / self.attempts if self.attempts else None


def destination_figures(metrics: Metrics, names: Iterable[str]) -> dict[str, DestinationFigures]:
    """Per destination since start: attempts, delivered ones, mean attempt duration."""
    attempts = metrics.attempts_by_destination()
    timed = metrics.attempt_time()
    figures = {}
    for name in names:
        total = sum(v for (d, _), v in attempts.items() if d == name)
        seconds, count = timed.get(name, (0.0, 0.0))
        mean = seconds / count * 1000 if count else None
        figures[name] = DestinationFigures(total, attempts.get((name, Kind.DELIVERED), 0.0),
                                           mean)
    return figures


@dataclass
class Traffic:
    """Samples of the totals; ``rates()`` gives pushes and deliveries per minute."""

    samples: deque[tuple[float, Totals]] = field(default_factory=lambda: deque(maxlen=KEEP))

    def sample(self, metrics: Metrics, now: float | None = None) -> None:
        self.samples.append((time.time() if now is None else now, Totals.read(metrics)))

    def rates(self) -> dict[str, list[float]]:
        """Columns for a chart: time, and per minute accepted pushes, refused pushes,
        delivered and failed attempts, between consecutive samples."""
        columns: dict[str, list[float]] = {"time": [], "accepted": [], "refused": [],
                                           "delivered": [], "failed": []}
        pairs = zip(list(self.samples), list(self.samples)[1:], strict=False)
        for (t0, a), (t1, b) in pairs:
            per_minute = 60.0 / max(t1 - t0, 1e-6)
            columns["time"].append(t1)
            columns["accepted"].append((b.accepted - a.accepted) * per_minute)
            columns["refused"].append(
                (sum(b.refused.values()) - sum(a.refused.values())) * per_minute)
            columns["delivered"].append((b.delivered - a.delivered) * per_minute)
            columns["failed"].append((b.failed - a.failed) * per_minute)
        return columns
