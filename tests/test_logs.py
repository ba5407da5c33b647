"""Log lines: escaped input, JSON objects, throttled bursts, secrets out of URLs."""

from __future__ import annotations

import io
import json
import logging

import pytest

from relay.logs import Throttle, configure, escape, formatter
from relay.redact import redact_text, redact_url

pytestmark = pytest.mark.fast


def line(fmt: str, message: str, *args: object, **extra: object) -> str:
    record = logging.LogRecord("relay.test", logging.WARNING, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return formatter(fmt).format(record)


def test_text_lines_escape_line_breaks_from_input() -> None:
    """A field value with CR, LF, ESC or U+2028 cannot start a forged line."""
    text = line("text", "refused push: %s", "x\n2026-01-01 INFO forged\r\x1b[31m\u2028")
    assert "\n" not in text and "\r" not in text and "\x1b" not in text
    assert "\u2028" not in text
    assert "x\\n2026-01-01 INFO forged\\r\\x1b[31m\\u2028" in text
    assert escape("订单 ok") == "订单 ok"


def test_json_lines_carry_time_level_logger_message_and_context() -> None:
    """One JSON object per line with the context fields given as extra."""
    text = line("json", "destination %s failing", "orders", destination="orders",
                webhook_id="msg_1")
    assert "\n" not in text
    data = json.loads(text)
    assert data["level"] == "warning"
    assert data["logger"] == "relay.test"
    assert data["message"] == "destination orders failing"
    assert (data["destination"], data["webhook_id"]) == ("orders", "msg_1")
    assert data["time"][:2] == "20"


def test_throttle_lets_one_line_per_window_with_the_count() -> None:
    """The first call speaks; calls within the window are held and counted into the next."""
    throttle = Throttle(every=10)
    assert throttle.let("k", 0.0) == 1
    assert [throttle.let("k", t) for t in (1.0, 2.0, 9.9)] == [None, None, None]
    assert throttle.let("other", 5.0) == 1
    assert throttle.let("k", 10.5) == 4
    assert throttle.let("k", 11.0) is None
    assert throttle.let("k", 21.0) == 2


@pytest.mark.parametrize(("url", "shown", "secret"), [
    ("postgresql://relay:PGPASS@db:5432/relay", "postgresql://relay:***@db:5432/relay",
     "PGPASS"),
    ("postgresql://relay:p@ss:w/rd@db/relay", "postgresql://relay:***@db/relay", "p@ss:w/rd"),
    ("postgresql://db/relay?user=relay&password=PGPASS&sslmode=require",
     "postgresql://db/relay?user=relay&password=***&sslmode=require", "PGPASS"),
    ("postgres://db/relay?sslpassword=KEYPASS", "postgres://db/relay?sslpassword=***",
     "KEYPASS"),
    ("sqlite:///relay.db", "sqlite:///relay.db", None),
])
def test_database_passwords_never_shown(url: str, shown: str, secret: str | None) -> None:
    """Every URL form hides its password, also inside an error message quoting it."""
    assert redact_url(url) == shown
    if secret:
        message = redact_text(f"cannot connect to {url}: password {secret} refused", url)
        assert secret not in message
        assert shown in message


def test_configured_handler_is_replaced_not_added() -> None:
    """configure() twice leaves one relay handler (a reload must not double every line)."""
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        configure("info", "text")
        configure("debug", "json")
        ours = [h for h in root.handlers if getattr(h, "relay_handler", False)]
        assert len(ours) == 1
        assert root.level == logging.DEBUG
        stream = io.StringIO()
        assert isinstance(ours[0].formatter, logging.Formatter)
        handler = logging.StreamHandler(stream)
        handler.setFormatter(ours[0].formatter)
        logging.getLogger("relay.x").addHandler(handler)
        logging.getLogger("relay.x").info("hello")
        assert json.loads(stream.getvalue())["message"] == "hello"
        logging.getLogger("relay.x").removeHandler(handler)
    finally:
        for h in list(root.handlers):
            if h not in before:
                root.removeHandler(h)
        root.setLevel(logging.WARNING)


def test_exception_texts_in_tracebacks_are_escaped() -> None:
    """A traceback's exception texts (a client's charset, say) cannot start a line: CR, LF,
    NEL, U+2028 and U+2029 in them are escaped, in a chained exception too."""
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, None)
    try:
        try:
            raise LookupError("unknown encoding: x\u0085 2026-12-05 ERROR fake\nline\u2028")
        except LookupError as exc:
            raise ValueError("outer\r\u2029") from exc
    except ValueError:
        import sys  # noqa: PLC0415

        record.exc_info = sys.exc_info()
    text = formatter("text").format(record)
    assert not any(c in text for c in "\r\x85\u2028\u2029")
    assert "\\x85 2026-12-05 ERROR fake\\nline\\u2028" in text
    assert not any(line.startswith("2026-12-05 ERROR") for line in text.splitlines())
    assert "Traceback (most recent call last)" in text
