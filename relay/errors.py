"""Every error the relay raises on purpose.

    RelayError
     ├── ConfigError            the config file cannot be used (each problem names its key path)
     ├── DocParseError          a SUBMAIL doc could not be turned into schemas
     ├── SchemaLoadError        an event schema file is missing or is not valid JSON Schema
     ├── StoreUnavailable       (relay.store) the store cannot write now: 503
     └── PushRejected           a push is refused; carries the HTTP status and a problem list
          ├── BadPush           400: the body cannot be read as one flat event
          ├── SignatureInvalid  401: signature missing or not made with a configured key
          ├── ReplayRefused     401: timestamp outside the replay window
          ├── NotAllowed        403: the client address is not allowed for this SUBHOOK
          ├── ReadTimedOut      408: the body did not arrive within limits.read_timeout
          ├── PayloadTooLarge   413: body over the limit
          ├── UnsupportedMediaType 415
          ├── EventInvalid      422: unknown event, or the schema rejects the fields
          └── Overloaded        503: too much in progress; SUBMAIL re-pushes later

Foreign exceptions (yaml, jsonschema, aiohttp, sqlite3) are translated at the module that
touches them, always with ``raise ... from exc``.
"""

from __future__ import annotations


class RelayError(Exception):
    """Root of the relay's own errors."""


class ConfigError(RelayError):
    """The config cannot be loaded; ``problems`` lists each one with its key path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid config:\n" + "\n".join(f"  - {p}" for p in problems))


class DocParseError(RelayError):
    """A SUBMAIL doc has a layout the schema generator does not understand."""


class SchemaLoadError(RelayError):
    """An event schema could not be loaded."""


class PushRejected(RelayError):
    """A push is refused with an HTTP status; ``problems`` name what is wrong."""

    status = 400
    code = "bad_request"

    def __init_subclass__(cls, *, status: int, code: str) -> None:
        super().__init_subclass__()
        cls.status, cls.code = status, code

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class SignatureInvalid(PushRejected, status=401, code="invalid_signature"):
    """Signature missing, or not made with a configured key."""


class EventInvalid(PushRejected, status=422, code="invalid_event"):
    """An unknown event, or fields the event's schema rejects."""


class BadPush(PushRejected, status=400, code="unparseable"):
    """The body cannot be read as one flat event."""


class PayloadTooLarge(PushRejected, status=413, code="too_large"):
    """The body is over the limit."""


class UnsupportedMediaType(PushRejected, status=415, code="unsupported_media_type"):
    """The body's content type is not one SUBHOOK sends."""


class ReplayRefused(PushRejected, status=401, code="outside_replay_window"):
    """The timestamp is outside the replay window."""


class ReadTimedOut(PushRejected, status=408, code="read_timeout"):
    """The body did not arrive within limits.read_timeout."""


class NotAllowed(PushRejected, status=403, code="forbidden"):
    """The client address is not allowed for this SUBHOOK."""


class Overloaded(PushRejected, status=503, code="overloaded"):
    """Too much in progress; SUBMAIL pushes again later."""
