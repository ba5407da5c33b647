"""Prometheus metrics, reached only through the few hooks the relay calls."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from relay.delivery.breaker import State
from relay.delivery.client import Outcome
from relay.store.base import DeliveryState, Gauges

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: A message takes seconds to minutes from request to delivered (SUBMAIL's times, whole s).
DESTINATION_STATES = tuple(state.value for state in State)
MESSAGE_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)

Metric = Counter | Histogram


def _read(metric: Metric, *labels: str, suffix: str = "_total") -> dict[tuple[str, ...], float]:
    """A metric's samples named ``*suffix``, summed by the values of ``labels``: how the
    registry is read back (prometheus_client keeps no other public way)."""
    found: dict[tuple[str, ...], float] = {}
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith(suffix):
                key = tuple(sample.labels.get(label, "") for label in labels)
                found[key] = found.get(key, 0.0) + sample.value
    return found


class Metrics:
    """One registry per app, so tests and several apps in one process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        #: labelled children by (metric, labels): few (products' events, outcomes,
        #: destinations and states), so a push does not resolve its labels again
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.events = Counter(
            "relay_events_received", "Pushes received, by product, event and outcome",
            ["product", "event", "outcome"], registry=self.registry)
        self.ingest_seconds = Histogram(
            "relay_ingest_seconds", "Time from request to answer", ["outcome"],
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.attempts = Counter(
            "relay_delivery_attempts", "Delivery attempts, by destination and outcome",
            ["destination", "outcome"], registry=self.registry)
        self.deliveries = Counter(
            "relay_deliveries", "Deliveries ended, by destination and final state",
            ["destination", "state"], registry=self.registry)
        self.attempt_seconds = Histogram(
            "relay_delivery_attempt_seconds", "Duration of one delivery attempt",
            ["destination"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge(
            "relay_queue_depth", "Deliveries waiting (pending), by destination",
            ["destination"], registry=self.registry)
        self.queue_oldest = Gauge(
            "relay_queue_oldest_seconds", "Age of the oldest pending delivery's event",
            ["destination"], registry=self.registry)
        self.dead_letters = Gauge(
            "relay_dead_letters", "Deliveries in the dead-letter list", registry=self.registry)
        self.quarantine_size = Gauge(
            "relay_quarantine_size", "Pushes held in quarantine", registry=self.registry)
        self.destination_up = Gauge(
            "relay_destination_up", "1 unless the last attempt to the destination failed",
            ["destination"], registry=self.registry)
        self.destination_state = Gauge(
            "relay_destination_state", "1 for the destination's current state (healthy, "
            "failing, open, paused), 0 for the others", ["destination", "state"],
            registry=self.registry)
        self.config_reloads = Counter(
            "relay_config_reloads", "Config reloads, by result (applied, refused)",
            ["result"], registry=self.registry)
        for result in ("applied", "refused"):
            self.config_reloads.labels(result)
        self.message_delivery = Histogram(
            "relay_message_delivery_seconds",
            "Request to delivered, by SUBMAIL's own times, per product",
            ["product"], buckets=MESSAGE_BUCKETS, registry=self.registry)
        self.messages = Counter(
            "relay_messages", "Messages reaching a state, by product and state",
            ["product", "state"], registry=self.registry)
        self.messages_dropped = Counter(
            "relay_messages_dropped", "Messages dropped, by product and drop-reason class",
            ["product", "reason"], registry=self.registry)

    def _child(self, metric: Metric, *labels: str) -> Any:
        """``metric.labels(*labels)``, resolved once: resolving costs more than counting,
        and a push or an attempt counts into two or three."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def received(self, product: str, event: str, outcome: str, seconds: float) -> None:
        self._child(self.events, product, event or "-", outcome).inc()
        self._child(self.ingest_seconds, outcome).observe(seconds)

    def attempt(self, destination: str, outcome: Outcome, state: str) -> None:
        self._child(self.attempts, destination, outcome.kind).inc()
        self._child(self.attempt_seconds, destination).observe(outcome.duration_ms / 1000)
        if state != DeliveryState.PENDING:
            self._child(self.deliveries, destination, state).inc()

    def config_reloaded(self, result: str) -> None:
        self.config_reloads.labels(result).inc()

    def pushes_by_outcome(self) -> dict[str, float]:
        """Pushes received since start, by outcome (accepted, or the refusal's code)."""
        return {outcome: n for (outcome,), n in _read(self.events, "outcome").items()}

    def attempts_by_destination(self) -> dict[tuple[str, str], float]:
        """Delivery attempts since start, by (destination, outcome kind)."""
        return {(name, kind): n for (name, kind), n in
                _read(self.attempts, "destination", "outcome").items()}

    def attempt_time(self) -> dict[str, tuple[float, float]]:
        """Per destination since start: (seconds spent in attempts, attempts timed)."""
        spent = _read(self.attempt_seconds, "destination", suffix="_sum")
        return {name: (spent.get((name,), 0.0), n) for (name,), n in
                _read(self.attempt_seconds, "destination", suffix="_count").items()}

    def render(self, gauges: Gauges, destinations: Mapping[str, bool], now: float,
               states: Mapping[str, str] | None = None) -> bytes:
        """The exposition, with the store's gauges and each configured destination's up
        state and state (relay/breaker.py) as they are now."""
        self.queue_depth.clear()
        self.queue_oldest.clear()
        for name in sorted(set(destinations) | set(gauges.backlog)):
            count, oldest = gauges.backlog.get(name, (0, now))
            self.queue_depth.labels(name).set(count)
            self.queue_oldest.labels(name).set(max(0.0, now - oldest))
        self.destination_up.clear()
        for name, up in destinations.items():
            self.destination_up.labels(name).set(1 if up else 0)
        self.destination_state.clear()
        for name, current in (states or {}).items():
            for state in DESTINATION_STATES:
                self.destination_state.labels(name, state).set(1 if state == current else 0)
        self.dead_letters.set(gauges.dead)
        self.quarantine_size.set(gauges.quarantined)
        return generate_latest(self.registry)
