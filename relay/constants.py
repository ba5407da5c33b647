"""Names and defaults that several modules share."""

from __future__ import annotations

#: Fields SUBMAIL adds to every push that are not part of the event itself.
SIGNING_FIELDS: tuple[str, ...] = ("token", "signature")

#: The JSON Schema dialect of every generated event schema.
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: Where the generated event schemas claim to live (``$id`` prefix); never fetched.
SCHEMA_ID_BASE = "https://subhook-relay.invalid/schemas/"

#: File name of the config schema inside the bundled schema folder.
CONFIG_SCHEMA_FILE = "config.schema.json"

#: Headers of every forwarded request (Standard Webhooks' three, and the relay's own).
H_ID = "webhook-id"
H_TIMESTAMP = "webhook-timestamp"
H_SIGNATURE = "webhook-signature"
H_PRODUCT = "X-Subhook-Product"
H_EVENT = "X-Subhook-Event"
H_ATTEMPT = "X-Relay-Attempt"

#: Statuses besides 5xx that mean "try again later".
RETRYABLE_STATUSES = frozenset({408, 425, 429})
#: Bytes of a service's answer read (and at most kept); the rest is never read.
ANSWER_READ_LIMIT = 4096
#: What an attempt keeps of the answer for `relay events show` (SPEC 12: the first 1 KiB).
STORED_ANSWER_BYTES = 1024

#: Retry-After (seconds) of a 503: shed under load, and the store failing.
RETRY_AFTER_OVERLOADED = "1"
RETRY_AFTER_STORE = "5"

#: Names the config file when a command is given no ``--config`` (the Docker image sets it).
CONFIG_ENV = "RELAY_CONFIG"

DEFAULT_LISTEN = "0.0.0.0:8080"
DEFAULT_STORE = "sqlite:///relay.db"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_IN_FLIGHT = 16
#: None: ``max_age`` alone ends a retryable delivery (SPEC 17): a service down for a day
#: costs a backlog, not dead letters.
DEFAULT_MAX_ATTEMPTS: int | None = None
DEFAULT_INITIAL_DELAY_S = 1.0
DEFAULT_MAX_DELAY_S = 600.0
DEFAULT_MAX_AGE_S = 48 * 3600.0
#: The circuit breaker (SPEC 17): open after this many consecutive retryable failures,
#: then one held delivery is tried every ``probe`` seconds.
DEFAULT_BREAKER_AFTER = 10
DEFAULT_BREAKER_PROBE_S = 30.0
#: How often a running relay reads the pauses an operator set from another process, and
#: the instances sharing a rate (SPEC 17: a pause is obeyed within 3 s).
CONTROL_POLL_S = 1.0
#: What an ``alerts:`` entry may be sent (SPEC 17); every one unless ``kinds`` names some.
ALERT_KINDS = ("destination.open", "destination.closed", "destination.paused",
               "destination.resumed", "dead_letter")
DEFAULT_ALERT_TIMEOUT_S = 5.0
#: SUBMAIL re-pushes for more than a day; a token must be remembered at least that long.
DEFAULT_REPLAY_PAST_S = 72 * 3600.0
DEFAULT_REPLAY_FUTURE_S = 300.0
#: Delivered events (and their attempt logs) are kept a week, then pruned every 10 min.
DEFAULT_RETENTION_DELIVERED_S = 7 * 24 * 3600.0
DEFAULT_RETENTION_INTERVAL_S = 600.0
#: A token once seen is refused this long: SUBMAIL signs the token only, so a captured
#: token and signature would otherwise be a credential for ever (SPEC 16).
DEFAULT_RETENTION_TOKENS_S = 400 * 24 * 3600.0
DEFAULT_LEASE_MARGIN_S = 30.0
#: How often an open store beats for the lease owners it has claimed for.
DEFAULT_HEARTBEAT_S = 5.0
#: A lease owner without a beat for this long is dead: its leases are void (three beats
#: missed, so a slow beat or two is not taken for a death).
DEFAULT_INSTANCE_DEAD_AFTER_S = 15.0
#: Rows of instances that never closed (SIGKILL, power) are deleted by ``prune`` after this
#: long; a missing row means "dead" as a stale one does, so this only bounds the table.
INSTANCE_FORGET_AFTER_S = 86400.0


