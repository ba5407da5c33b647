"""Broker URLs read and checked (relay/senders/urls.py), one sender per destination, and
their passwords masked in `relay check`, `relay destinations list`, logs and attempt errors.
No broker server needed: failures are against closed ports."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from relay import senders as senders_module
from relay.cli.parser import main
from relay.delivery.client import Kind
from relay.routing import Destination
from relay.senders import Senders
from relay.senders.urls import BrokerTarget, destination_url_problem, parse_broker
from relay.store import ClaimedDelivery, open_store

PASSWORD = "s3cret-broker-pw"
CONFIG = """\
store: sqlite:///{db}
subhooks:
  - {{path: /subhook/sms, product: sms, keys: [k]}}
routes:
  - name: all
    destinations:
{destinations}
"""


def config(write_config: Callable[[str], Path], tmp_path: Path, *urls: str) -> Path:
    destinations = "\n".join(f'      - {{name: d{i}, url: "{url}"}}' for i, url in enumerate(urls))
    return write_config(CONFIG.format(db=tmp_path / "relay.db", destinations=destinations))


@pytest.mark.fast
def test_broker_urls_are_read_into_their_parts() -> None:
    """Subject, exchange and routing key, stream and maxlen; default ports; the server URL
    keeps its credentials and loses the parts the relay publishes to."""
    assert parse_broker(f"nats://u:{PASSWORD}@nats.internal/orders.sms") == BrokerTarget(
        "nats", f"nats://u:{PASSWORD}@nats.internal:4222", "orders.sms")
    assert parse_broker("amqp://guest:guest@mq:5673/prod?exchange=ev&routing_key=sms") == \
        BrokerTarget("amqp", "amqp://guest:guest@mq:5673/prod", "ev", "sms")
    assert parse_broker("amqp://mq/?exchange=&routing_key=q").name == ""
    assert parse_broker(f"redis://:{PASSWORD}@cache:6380/2?stream=ev&maxlen=100") == \
        BrokerTarget("redis", f"redis://:{PASSWORD}@cache:6380/2", "ev", maxlen=100)
    assert parse_broker("redis://cache?stream=ev").server == "redis://cache:6379/0"


@pytest.mark.fast
@pytest.mark.parametrize(("url", "problem"), [
    ("kafka://k:9092/topic", "unknown scheme 'kafka'"),
    ("nats://n:4222/", "names no subject"),
    ("nats://n:4222/orders.*", "not a plain NATS subject"),
    ("amqp://mq/?routing_key=k", "names no exchange"),
    ("amqp://mq/?exchange=", "no routing_key"),
    ("redis://r:6379/0", "names no stream"),
    ("redis://r:6379/x?stream=s", "not a database number"),
    ("redis://r:6379/0?stream=s&maxlen=0", "maxlen"),
    ("redis://r:6379/0?stream=s&tls=1", "unknown query parameter 'tls'"),
])
def test_broker_urls_missing_a_part_are_refused(url: str, problem: str) -> None:
    """Each missing or wrong part is named."""
    found = destination_url_problem(url)
    assert found is not None and problem in found, found


def test_check_refuses_bad_broker_urls_naming_the_key_path_and_masking_passwords(
        write_config: Callable[[str], Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`relay check` exits 1, one line per URL with its key path, no password."""
    path = config(write_config, tmp_path, f"kafka://u:{PASSWORD}@k/t",
                  f"nats://u:{PASSWORD}@n:4222/", f"amqp://u:{PASSWORD}@mq/",
                  f"redis://:{PASSWORD}@r:6379/0")
    assert main(["check", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    for index, words in enumerate(["unknown scheme", "names no subject", "names no exchange",
                                   "names no stream"]):
        assert f"routes[0].destinations[{index}].url" in err
        assert words in err
    assert PASSWORD not in err
    assert "u:***@" in err and ":***@r:6379" in err


async def test_check_and_destinations_list_mask_broker_passwords(
        write_config: Callable[[str], Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A valid config of three brokers: accepted, listed, never with a password."""
    store = open_store(f"sqlite:///{tmp_path / 'relay.db'}")
    await store.open()
    await store.close()
    path = config(write_config, tmp_path, f"nats://u:{PASSWORD}@127.0.0.1:4222/ev.sms",
                  f"amqp://u:{PASSWORD}@127.0.0.1/?exchange=ev&routing_key=sms",
                  f"redis://:{PASSWORD}@127.0.0.1:6379/0?stream=ev")
    assert main(["check", "--config", str(path)]) == 0
    for json in ([], ["--json"]):
        done = await asyncio.to_thread(main, ["destinations", "list", "--config", str(path),
                                              *json])
        assert done == 0
    out = capsys.readouterr()
    assert PASSWORD not in out.out + out.err
    assert "nats://u:***@127.0.0.1:4222/ev.sms" in out.out
    assert "redis://:***@127.0.0.1:6379/0?stream=ev" in out.out


def test_check_names_the_extra_when_a_broker_client_is_missing(
        write_config: Callable[[str], Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the broker clients installed, a broker URL is refused naming the extra."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "aio_pika" else real(name, *a))
    path = config(write_config, tmp_path, "amqp://127.0.0.1/?exchange=ev&routing_key=sms",
                  "redis://127.0.0.1:6379/0?stream=ev")
    assert main(["check", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "routes[0].destinations[0].url" in err
    assert "pip install 'subhook-relay[brokers]'" in err
    assert "destinations[1]" not in err


def claimed() -> ClaimedDelivery:
    return ClaimedDelivery(1, 1, "d", 0, time.time() + 60, "msg_test", "sms", "delivered",
                           '{"events": "delivered"}', b"", "application/json")


@pytest.mark.parametrize("url", [
    f"nats://u:{PASSWORD}@127.0.0.1:1/ev.sms",
    f"amqp://u:{PASSWORD}@127.0.0.1:1/?exchange=ev&routing_key=sms",
    f"redis://:{PASSWORD}@127.0.0.1:1/0?stream=ev",
])
async def test_an_unreachable_broker_is_retryable_and_its_password_stays_hidden(
        url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Connection refused: a retryable outcome whose error (and every log line) has no
    password."""
    senders = Senders()
    try:
        outcome = await senders.send(claimed(), Destination("d", url, timeout=1.0), 1)
    finally:
        await senders.close()
    assert outcome.kind is Kind.RETRYABLE
    assert outcome.error
    assert PASSWORD not in outcome.error
    assert PASSWORD not in caplog.text


async def test_one_sender_per_broker_url_and_one_for_all_http() -> None:
    """Connections are opened once per destination and reused."""
    senders = Senders()
    nats_a = Destination("a", "nats://127.0.0.1:1/ev.a")
    try:
        assert senders.sender(nats_a) is senders.sender(Destination("a", nats_a.url))
        assert senders.sender(Destination("h1", "http://127.0.0.1:1/a")) is \
            senders.sender(Destination("h2", "https://127.0.0.1:1/b"))
        assert senders.sender(nats_a) is not senders.sender(
            Destination("b", "nats://127.0.0.1:1/ev.b"))
    finally:
        await senders.close()


async def test_a_missing_client_at_send_time_is_a_retryable_failure_naming_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The backstop of a config loaded before the extra went away."""
    def no_client(url: str) -> None:
        raise ModuleNotFoundError("No module named 'nats'")

    monkeypatch.setattr(senders_module, "broker_sender", no_client)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    outcome = await Senders().send(claimed(), Destination("d", "nats://127.0.0.1:1/ev"), 1)
    assert outcome.kind is Kind.RETRYABLE
    assert outcome.error is not None and "subhook-relay[brokers]" in outcome.error
