from __future__ import annotations

import pytest

from relay.drop_reasons import RECEIPT_CODES, CodeTable, DropClass, drop_class, normalise

pytestmark = pytest.mark.fast


def classes(*reports: str | None) -> set[DropClass]:
    return {drop_class(report) for report in reports}


def test_the_classes_are_spec_14s_eight() -> None:
    """The class list is exactly SPEC 14's, in its order, as the strings metrics use."""
    assert list(DropClass) == ["number", "content", "blacklist", "frequency", "routing",
                               "signature", "unsubscribed", "other"]


def test_number() -> None:
    """Vacant, suspended, off or unreachable numbers: UNDELIV, EXPIRED, MK MN MI LT 2: 2_."""
    assert classes(" MK:0001", "MK00013", "MN:0017", "MI:0059", "LT:0001", "2:1", "2:100",
                   "2_10", "UNDELIV", " UNDELIV", "EXPIRED", "PHONEERR",
                   "GUNDELIV") == {DropClass.NUMBER}


def test_content() -> None:
    """Refused content: REJECTD, REJECT, KEYWORD(S), MA:*, and ID:0076 alone of the ID codes."""
    assert classes("REJECTD", "REJECT", "KEYWORD", "KEYWORDS", "MA:0001",
                   "ID:0076") == {DropClass.CONTENT}
    assert classes("ID:0077", "ID:0001", "ID:") == {DropClass.OTHER}


def test_blacklist() -> None:
    """Blacklisted: BLACK (SUBMAIL also writes black), BLOCKED, PUBLOKD, DB:*."""
    assert classes("DB:0141", "BLACK", "black", "BLOCKED", "PUBLOKD") == {DropClass.BLACKLIST}


def test_frequency() -> None:
    """Sending limits: BEYONDM, BEYONDH, BEYONDD, LIMIT."""
    assert classes("BEYONDM", "BEYONDH", "BEYONDD", "LIMIT") == {DropClass.FREQUENCY}


def test_routing() -> None:
    """No channel: NOROUTE, NONCHN."""
    assert classes("NOROUTE", "NONCHN") == {DropClass.ROUTING}


def test_signature() -> None:
    """Refused signature: SIGNBLOCKED, SIGFAIL, QM_FAIL."""
    assert classes("SIGNBLOCKED", "SIGFAIL", "QM_FAIL") == {DropClass.SIGNATURE}


def test_unsubscribed() -> None:
    """SUBMAIL's `unsubscribe` code is unsubscribed; guessed codes are not."""
    assert drop_class("unsubscribe") == DropClass.UNSUBSCRIBED
    assert classes("TD", "UNSUB", "unsubscribed") == {DropClass.OTHER}


def test_other() -> None:
    """Unknown codes, near misses and prefixes without their colon are other."""
    assert classes("ABC", "DELIVRD", "UNDELIVERED", "BLACKLIST", "MN0017", "DB0141",
                   "2", "M", "LIMIT:1") == {DropClass.OTHER}


def test_empty_or_missing_report_is_other() -> None:
    """No code says nothing about the number: None, "" and blanks are other, not number."""
    assert classes(None, "", "   ", "\u3000") == {DropClass.OTHER}


def test_case_and_full_width_forms_fold() -> None:
    """Lower case, the full-width colon, full-width letters, digits and spaces all fold."""
    assert classes("mk:0001", "MK：0001", "ｍｋ：０００１",
                   "\u3000ＭＫ：0001 ") == {DropClass.NUMBER}
    assert drop_class("ｉｄ：００７６") == DropClass.CONTENT
    assert drop_class("ＤＢ：0141") == DropClass.BLACKLIST
    assert drop_class("ＳＩＧＦＡＩＬ") == DropClass.SIGNATURE
    assert normalise(" ＭＫ：０００１\t") == "mk:0001"


def test_an_exact_code_beats_a_prefix_and_the_longest_prefix_wins() -> None:
    """Precedence does not depend on the order codes are listed in."""
    table = CodeTable({DropClass.NUMBER: ("ID*", "ID:00*"), DropClass.CONTENT: ("ID:0076",),
                       DropClass.BLACKLIST: ("ID:*",)})
    assert table.classify("id:0076") == DropClass.CONTENT
    assert table.classify("ID:0077") == DropClass.NUMBER
    assert table.classify("ID:1234") == DropClass.BLACKLIST
    assert table.classify("IDX") == DropClass.NUMBER
    assert table.classify("") == DropClass.OTHER


@pytest.mark.parametrize("codes", [("DB:*", "db:*"), ("BLACK", "ＢＬＡＣＫ"), ("*",)])
def test_a_code_listed_twice_or_empty_is_refused(codes: tuple[str, ...]) -> None:
    """Two entries that normalise alike, or an empty prefix, would make the table ambiguous."""
    with pytest.raises(ValueError, match="empty or listed twice"):
        CodeTable({DropClass.BLACKLIST: codes})


def test_every_class_but_other_has_codes() -> None:
    """Each named class is reachable; `other` is only the fallback."""
    assert set(RECEIPT_CODES) == set(DropClass) - {DropClass.OTHER}
    assert all(RECEIPT_CODES.values())
