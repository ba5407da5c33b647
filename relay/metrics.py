"""Prometheus metrics, reached only through the few hooks the relay calls."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from relay.delivery import Outcome

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """One registry per app, so tests and several apps in one process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
            "relay_queue_depth", "Deliveries waiting (pending)", registry=self.registry)
        self.dead_letters = Gauge(
            "relay_dead_letters", "Deliveries in the dead-letter list", registry=self.registry)

    def received(self, product: str, event: str, outcome: str, seconds: float) -> None:
        self.events.labels(product, event or "-", outcome).inc()
        self.ingest_seconds.labels(outcome).observe(seconds)

    def attempt(self, destination: str, outcome: Outcome, state: str) -> None:
        self.attempts.labels(destination, outcome.kind).inc()
        self.attempt_seconds.labels(destination).observe(outcome.duration_ms / 1000)
        if state != "pending":
            self.deliveries.labels(destination, state).inc()

    def render(self, queue_depth: int, dead_letters: int) -> bytes:
        self.queue_depth.set(queue_depth)
        self.dead_letters.set(dead_letters)
        return generate_latest(self.registry)
