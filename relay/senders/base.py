"""The one interface every kind of destination implements (STYLE 19, SPEC 20).

A sender sends one delivery and says what it came to, as the ``Outcome`` of
relay/delivery/client.py; the worker, the breaker, the rate, the order, the dead letters and the
metrics see only that, never which kind they drive.

    Sender
     ├── HttpSender     http://, https://   (relay/senders/http.py)
     └── BrokerSender   one connection per destination, opened on first use and reused;
         │              the broker's client reconnects after a restart
         ├── NatsSender    JetStream publish, the stream's ack awaited   (nats.py)
         ├── AmqpSender    persistent, publisher confirms, mandatory      (amqp.py)
         └── RedisSender   XADD to a stream                               (redis.py)

A broker's outcome is decided here, once: the broker confirmed (DELIVERED, its
acknowledgement kept as the attempt's answer); any error of the broker's client, a refusal
(no stream, unroutable, nack) or a timeout (RETRYABLE, with a text that never holds the
URL's password); a message that cannot be built (PERMANENT, as for HTTP).
"""

from __future__ import annotations

import abc
import asyncio
import time

from relay.delivery.client import Kind, Outcome, build_request
from relay.redact import redact_text
from relay.routing import Destination
from relay.senders.urls import BrokerTarget, parse_broker
from relay.store import ClaimedDelivery

#: Longest error text an attempt keeps from a broker's client.
ERROR_TEXT_MAX = 300


class Sender(abc.ABC):
    """Sends deliveries to one kind of destination; closed when the worker stops."""

    @abc.abstractmethod
    async def send(self, delivery: ClaimedDelivery, destination: Destination,
                   attempt: int) -> Outcome:
        """Send one delivery (``attempt`` counts from 1) and classify what happened. Never
        raises for the destination's trouble."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close what the sender holds open."""


class BrokerSender(Sender):
    """A broker destination: builds the message as HTTP would, publishes it through
    ``publish`` within the destination's ``timeout``, and classifies the result."""

    #: the broker client's own errors (and OSError): the only ones that mean "retry"
    errors: tuple[type[BaseException], ...] = (OSError,)
    #: what is being waited for, in a timeout's text ("the stream's acknowledgement")
    waits_for = "the broker"

    def __init__(self, url: str) -> None:
        self.url = url
        self.target: BrokerTarget = parse_broker(url)
        self._lock = asyncio.Lock()

    @abc.abstractmethod
    async def publish(self, body: bytes, headers: dict[str, str], delivery: ClaimedDelivery,
                      wait: float) -> bytes:
        """Publish one message; return the broker's acknowledgement (the attempt's answer).
        Raises one of ``errors`` when the broker refuses it or cannot be reached."""

    async def send(self, delivery: ClaimedDelivery, destination: Destination,
                   attempt: int) -> Outcome:
        started = time.monotonic()

        def elapsed() -> float:
            return (time.monotonic() - started) * 1000

        try:
            body, headers = build_request(delivery, destination, attempt, time.time())
        except ValueError as exc:  # a secret that is not base64; the config refuses it
            return Outcome(Kind.PERMANENT, None, f"message not built: {exc}", elapsed())
        try:
            async with asyncio.timeout(destination.timeout):
                answer = await self.publish(body, headers, delivery, destination.timeout)
        except TimeoutError:
            return Outcome(Kind.RETRYABLE, None, f"timeout after {destination.timeout:g}s "
                           f"waiting for {self.waits_for}", elapsed())
        except asyncio.CancelledError:
            raise
        except self.errors as exc:
            return Outcome(Kind.RETRYABLE, None, self.describe(exc), elapsed())
        return Outcome(Kind.DELIVERED, None, None, elapsed(), answer=answer)

    def describe(self, exc: BaseException) -> str:
        """``NoStreamResponseError: nats: no response from stream``: the error's kind and
        text, without the URL's password, on one line, bounded."""
        text = str(exc) or repr(exc)
        text = " ".join(redact_text(f"{type(exc).__name__}: {text}", self.url).split())
        return text[:ERROR_TEXT_MAX]
