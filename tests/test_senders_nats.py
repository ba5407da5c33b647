"""NATS JetStream destinations against a real nats-server (.ci/nats; tests/brokerkit.py)."""

from __future__ import annotations

import secrets
from pathlib import Path

import nats
import nats.js.errors
import pytest
from brokerkit import (
    Arrived,
    BrokerSide,
    arrives_once_with_the_http_body,
    private_server,
    refusal_is_retryable,
    server_url,
    survives_an_outage,
)
from conftest import MakeRelay, MakeSink


class NatsSide(BrokerSide):
    """A stream of its own capturing one subject."""

    @property
    def destination_url(self) -> str:
        return f"{self.server}/t.{self.name}.events"

    async def _stream(self, create: bool) -> None:
        nc = await nats.connect(self.server)
        try:
            js = nc.jetstream()
            if create:
                await js.add_stream(name=self.name, subjects=[f"t.{self.name}.>"])
            else:
                await js.delete_stream(self.name)
        finally:
            await nc.close()

    async def prepare(self) -> None:
        await self._stream(create=True)

    async def refuse(self) -> None:
        await self._stream(create=False)

    async def accept(self) -> None:
        await self._stream(create=True)

    async def arrived(self) -> list[Arrived]:
        nc = await nats.connect(self.server)
        try:
            js = nc.jetstream()
            info = await js.stream_info(self.name)
            found = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                try:
                    msg = await js.get_msg(self.name, seq)
                except nats.js.errors.NotFoundError:
                    continue
                headers = dict(msg.headers or {})
                found.append(Arrived(headers["Nats-Msg-Id"], msg.data or b"", headers))
            return found
        finally:
            await nc.close()


def side(server: str) -> NatsSide:
    return NatsSide(server, "S" + secrets.token_hex(4))


async def test_an_event_arrives_once_with_the_http_body(
        make_relay: MakeRelay, make_sink: MakeSink) -> None:
    """The stream holds the event once: HTTP's body, webhook-id as Nats-Msg-Id and header."""
    await arrives_once_with_the_http_body(side(server_url("nats")), make_relay, make_sink)


@pytest.mark.timeout(180)
async def test_a_restart_loses_and_duplicates_nothing(make_relay: MakeRelay,
                                                      tmp_path: Path) -> None:
    """nats-server down 20 s mid-test: every event is in the stream once after it."""
    async with private_server("nats", tmp_path) as server:
        await survives_an_outage(side(server.url), server, make_relay, tmp_path / "relay.yaml")


async def test_no_stream_is_a_retryable_failure(make_relay: MakeRelay, tmp_path: Path) -> None:
    """No stream captures the subject: pending, the error in `relay events show`."""
    await refusal_is_retryable(side(server_url("nats")), make_relay, tmp_path / "relay.yaml",
                               "NoStreamResponseError")
