"""What each event says about its message (SPEC 14), pure: which state of the message's
lifecycle it reports, when SUBMAIL says it happened, and why a drop happened.

A message is (product, send_id). Its states are ranked by lifecycle, not by arrival:
``request`` < ``sending`` < ``unknown`` < ``dropped`` (mail's ``bounced`` alike) <
``delivered`` < what follows delivery (voice ``signal``, mail ``opened`` < ``clicked``). A
message's state is the highest it reached; each state keeps the earliest SUBMAIL time
given for it, so events applied in any order, or twice, leave the same record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relay import times
from relay.drop_reasons import drop_class
from relay.products import PRODUCTS

#: Each tracked state's rank; events of other kinds (templates, mo ...) have no message.
RANKS: Mapping[str, int] = {"request": 1, "sending": 2, "unknown": 3, "dropped": 4,
                            "bounced": 4, "delivered": 5, "signal": 6, "opened": 6,
                            "clicked": 7}
#: The states a message keeps SUBMAIL's time of, in rank order (the messages table's
#: ``<state>_at`` columns: store/migrations.py's V7_STATES, which must match).
STATES: tuple[str, ...] = tuple(RANKS)
#: States whose ``report`` or ``reason`` says why the message failed.
FAILED = frozenset({"dropped", "bounced", "unknown"})


@dataclass(frozen=True)
class MessageUpdate:
    """One event's contribution to its message's record."""

    product: str
    send_id: str
    state: str
    rank: int
    #: SUBMAIL's time of the event (its ``timestamp``), or when the relay received it
    at: float
    contact: str | None  # masked
    tag: str | None
    report: str | None
    reason: str | None  # a drop_reasons class, for failed states
    operator: str | None
    location: str | None
    updated_at: float  # when the relay received the event


def submail_time(value: Any) -> float | None:
    """SUBMAIL's ``timestamp`` read as the replay window reads it (times.read_timestamp);
    None when it is not read so, or is no time a page can show (a value stored before the
    edge read it one way, such as ``" " + "9" * 400`` or ``"²"``)."""
    try:
        return times.showable(times.read_timestamp(value))
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def update_of(product: str, event: str, fields: Mapping[str, Any],
              received_at: float) -> MessageUpdate | None:
    """The event's update to its message; None for an event with no send_id or of a kind
    that is no step of a message's life."""
    send_id, rank = _text(fields.get("send_id")), RANKS.get(event)
    if send_id is None or rank is None:
        return None
    known = PRODUCTS.get(product)
    report = _text(fields.get("report")) or (
        _text(fields.get("reason")) if event in FAILED else None)
    return MessageUpdate(
        product=product, send_id=send_id, state=event, rank=rank,
        at=submail_time(fields.get("timestamp")) or received_at,
        contact=known.masked(fields) if known else None, tag=_text(fields.get("tag")),
        report=report, reason=str(drop_class(report)) if event in FAILED else None,
        operator=_text(fields.get("operator")), location=_text(fields.get("location")),
        updated_at=received_at)
