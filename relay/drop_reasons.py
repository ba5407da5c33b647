"""Drop reasons: the class of a ``dropped`` message's ``report`` (SPEC 14). Pure.

A report is normalised before lookup: NFKC, then trimmed, then case-folded. NFKC rather than
replacing ``：`` alone: receipts that pass through Chinese systems may carry any of the
full-width forms (``ＭＫ：０００１``, ideographic spaces), and NFKC folds that whole block to
ASCII in one standard step. It also folds other compatibility forms (``①`` → ``1``), which
no receipt code uses. The table below is normalised the same way, so it is written as
SUBMAIL writes its codes.

Precedence: an exact code wins over any prefix (``ID:0076`` is content; no other ``ID:``
code is listed, so those are other); among prefixes the longest match wins; no match, and
an empty or missing report, is ``other``. SPEC's "number (empty, …)" is SUBMAIL's 空号, a
number that does not exist, not an empty report: no code says nothing about the number.

The codes are SUBMAIL's receipt code table (回执代码表, mysubmail.com/documents/1XQAE4).
SPEC 14 names no code for ``unsubscribed``; that table lists one, ``unsubscribe``, which is
the only one taken: guessed codes (``TD``, ``UNSUB``) are not listed.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from enum import StrEnum


class DropClass(StrEnum):
    """Why SUBMAIL dropped a message; the ``reason`` label of dropped-message metrics."""

    #: the number is vacant, suspended, switched off or unreachable
    NUMBER = "number"
    #: the content was refused (sensitive words, keywords)
    CONTENT = "content"
    #: the number is on a gateway or operator blacklist
    BLACKLIST = "blacklist"
    #: a per-minute, per-hour or per-day sending limit was reached
    FREQUENCY = "frequency"
    #: no channel could carry the message
    ROUTING = "routing"
    #: the signature was refused, usually after complaints
    SIGNATURE = "signature"
    #: the recipient unsubscribed
    UNSUBSCRIBED = "unsubscribed"
    #: any other code, and no code at all
    OTHER = "other"


#: SUBMAIL's receipt codes by class: ``X*`` is a prefix, anything else an exact code. In each
#: class SPEC 14's codes come first, then those SUBMAIL's table adds for the same meaning:
#: ``MKXXXX`` (so ``MK*``, not ``MK:*``), ``2_X``, PHONEERR and GUNDELIV (a wrong number was
#: sent), REJECT, KEYWORDS, QM_FAIL, and the one ``unsubscribed`` code.
RECEIPT_CODES: Mapping[DropClass, tuple[str, ...]] = {
    DropClass.NUMBER: ("UNDELIV", "EXPIRED", "MK*", "MN:*", "MI:*", "LT:*", "2:*",
                       "2_*", "PHONEERR", "GUNDELIV"),
    DropClass.CONTENT: ("REJECTD", "KEYWORD", "MA:*", "ID:0076", "REJECT", "KEYWORDS"),
    DropClass.BLACKLIST: ("BLACK", "BLOCKED", "PUBLOKD", "DB:*"),
    DropClass.FREQUENCY: ("BEYONDM", "BEYONDH", "BEYONDD", "LIMIT"),
    DropClass.ROUTING: ("NOROUTE", "NONCHN"),
    DropClass.SIGNATURE: ("SIGNBLOCKED", "SIGFAIL", "QM_FAIL"),
    DropClass.UNSUBSCRIBED: ("UNSUBSCRIBE",),
}


def normalise(report: str | None) -> str:
    """The report as looked up: NFKC, trimmed, case-folded; ``""`` for None."""
    return unicodedata.normalize("NFKC", report or "").strip().casefold()


class CodeTable:
    """A table of exact codes and prefixes, looked up with the precedence above."""

    def __init__(self, codes: Mapping[DropClass, Iterable[str]]) -> None:
        self._exact: dict[str, DropClass] = {}
        prefixes: dict[str, DropClass] = {}
        for drop_class, entries in codes.items():
            for entry in entries:
                key = normalise(entry.removesuffix("*"))
                into = prefixes if entry.endswith("*") else self._exact
                if not key or key in into:
                    raise ValueError(f"receipt code {entry!r} is empty or listed twice")
                into[key] = drop_class
        self._prefixes = sorted(prefixes.items(), key=lambda item: -len(item[0]))

    def classify(self, report: str | None) -> DropClass:
        code = normalise(report)
        if not code:
            return DropClass.OTHER
        if code in self._exact:
            return self._exact[code]
        for prefix, drop_class in self._prefixes:
            if code.startswith(prefix):
                return drop_class
        return DropClass.OTHER


_TABLE = CodeTable(RECEIPT_CODES)


def drop_class(report: str | None) -> DropClass:
    """The class of a ``dropped`` event's ``report`` (a StrEnum, so also its name as str)."""
    return _TABLE.classify(report)
