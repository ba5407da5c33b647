"""Destinations behind one interface (SPEC 20, STYLE 19): the URL's scheme chooses the
sender, relay/senders/base.py draws the tree.

``Senders`` is what the worker holds: one HTTP client for every HTTP destination, one
sender (one connection) per broker URL, opened on first use and closed when the worker
stops. A broker's client is imported only when a destination names that broker, so a relay
installed without the ``brokers`` extra runs as before.
"""

from __future__ import annotations

import importlib
import logging

from relay.delivery.client import Kind, Outcome
from relay.redact import redact_url
from relay.routing import Destination
from relay.senders.base import Sender
from relay.senders.http import HttpSender
from relay.senders.urls import is_broker, missing_client, scheme_of
from relay.store import ClaimedDelivery

__all__ = ["Sender", "Senders"]

log = logging.getLogger("relay.senders")

#: The module and class of each broker's sender.
_BROKERS = {"nats": ("relay.senders.nats", "NatsSender"),
            "amqp": ("relay.senders.amqp", "AmqpSender"),
            "redis": ("relay.senders.redis", "RedisSender")}


def broker_sender(url: str) -> Sender:
    """A new sender for a broker URL (its client imported now)."""
    module, name = _BROKERS[scheme_of(url)]
    sender: Sender = getattr(importlib.import_module(module), name)(url)
    return sender


class Senders:
    def __init__(self) -> None:
        self._http: HttpSender | None = None
        self._brokers: dict[str, Sender] = {}

    def sender(self, destination: Destination) -> Sender:
        if not is_broker(destination.url):
            if self._http is None:
                self._http = HttpSender()
            return self._http
        sender = self._brokers.get(destination.url)
        if sender is None:
            sender = self._brokers[destination.url] = broker_sender(destination.url)
        return sender

    async def send(self, delivery: ClaimedDelivery, destination: Destination,
                   attempt: int) -> Outcome:
        """Send one delivery by the sender its URL chooses."""
        try:
            sender = self.sender(destination)
        except ImportError:
            # The config refuses such a destination (missing_client); this is the backstop.
            missing = missing_client(destination.url) or "cannot import the broker's client"
            return Outcome(Kind.RETRYABLE, None, f"the destination {missing}", 0.0)
        return await sender.send(delivery, destination, attempt)

    async def close(self) -> None:
        senders = [*self._brokers.values(), *([self._http] if self._http else [])]
        self._brokers, self._http = {}, None
        for sender in senders:
            try:
                await sender.close()
            except Exception:
                log.exception("closing a sender failed (%s)",
                              redact_url(getattr(sender, "url", "http")))
