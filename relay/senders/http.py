"""HTTP destinations: one client shared by all (a pool per host); relay/delivery/client.py
builds the request and classifies the answer."""

from __future__ import annotations

from relay.delivery import client as http
from relay.delivery.client import Client, Outcome
from relay.routing import Destination
from relay.senders.base import Sender
from relay.store import ClaimedDelivery


class HttpSender(Sender):
    def __init__(self) -> None:
        self.client: Client = http.new_client()

    async def send(self, delivery: ClaimedDelivery, destination: Destination,
                   attempt: int) -> Outcome:
        return await http.send(self.client, delivery, destination, attempt)

    async def close(self) -> None:
        await self.client.close()
