"""Every statement the stores run, each written once (how: relay/store/sql.py).

Most serve both dialects. A few are one dialect's own because the two do different things,
not the same thing in other words: PostgreSQL ingests in one round trip (data-modifying
CTEs, which SQLite lacks) and claims with ``FOR UPDATE SKIP LOCKED`` under leases that also
end with their owner's heartbeat; SQLite, one writer on one connection, claims in three
cheap steps. Those are marked ``only=``.

States written are parameters (``state = :state``, a DeliveryState or QuarantineState);
states filtered on are ``{pending}``-style literals rendered from the same StrEnums
(see sql.STATES for why).
"""

from __future__ import annotations

from relay.store.sql import Dialect, Statement, collect

# -- ingest -------------------------------------------------------------------------------

REMEMBER_TOKEN = Statement("""
INSERT INTO token_memory (key, seen_at) VALUES (:key, :seen_at) ON CONFLICT DO NOTHING
""")

INSERT_EVENT = Statement("""
INSERT INTO events (webhook_id, identity, token, product, event, tag, fields, body,
                    content_type, received_at, send_id, contact)
VALUES (:webhook_id, :identity, :token, :product, :event, :tag, :fields, :body,
        :content_type, :received_at, :send_id, :contact)
ON CONFLICT DO NOTHING
""", only=Dialect.SQLITE)

#: A delivery owed: pending, no attempt made yet.
INSERT_DELIVERY = Statement("""
INSERT INTO deliveries (event_id, destination, state, attempt, next_attempt_at, expires_at,
                        updated_at)
VALUES (:event_id, :destination, {pending}, 0, :next_attempt_at, :expires_at, :updated_at)
""", only=Dialect.SQLITE)

#: One round trip: remember the token, then (only if it is new, or ``token_seen``) the
#: event, then (only if its identity is new) its deliveries; the new event's id, or NULL
#: for a duplicate.
INGEST = Statement("""
WITH fresh AS (
    INSERT INTO token_memory (key, seen_at) VALUES (:key, :received_at)
    ON CONFLICT DO NOTHING RETURNING 1
), event AS (
    INSERT INTO events (webhook_id, identity, token, product, event, tag, fields, body,
                        content_type, received_at, send_id, contact)
    SELECT :webhook_id, :identity, :token, :product, :event, :tag, :fields, :body,
           :content_type, :received_at, :send_id, :contact
    WHERE EXISTS (SELECT 1 FROM fresh) OR :token_seen::boolean
    ON CONFLICT (identity) DO NOTHING RETURNING id
), owed AS (
    INSERT INTO deliveries (event_id, destination, state, attempt, next_attempt_at,
                            expires_at, updated_at)
    SELECT event.id, d.name, {pending}, 0, :received_at, d.expires, :received_at
    FROM event, unnest(:destinations::text[], :expires::float8[]) AS d(name, expires)
)
SELECT id FROM event
""", only=Dialect.POSTGRES)

SEEN = Statement("""
SELECT EXISTS (SELECT 1 FROM token_memory WHERE key = :key)
       OR EXISTS (SELECT 1 FROM events WHERE identity = :identity) AS seen
""")

QUARANTINE = Statement("""
INSERT INTO quarantine (identity, subhook_path, product, fields, body, content_type,
                        problems, received_at, state)
VALUES (:identity, :subhook_path, :product, :fields, :body, :content_type, :problems,
        :received_at, :state)
ON CONFLICT (identity) DO UPDATE SET problems = excluded.problems
RETURNING id
""")

# -- delivery -----------------------------------------------------------------------------

#: What a worker needs to send a claimed delivery: ClaimedDelivery's fields, by name.
_CLAIMED_COLUMNS = """d.id, d.event_id, d.destination, d.attempt, d.expires_at, e.webhook_id,
       e.product, e.event, e.fields, e.body, e.content_type, d.next_attempt_at, d.replays"""

#: What a claim takes for a destination: due rows (``next_attempt_at`` passed), oldest due
#: first; with ``order: send_id`` only those of which no earlier event of the same
#: (product, send_id) still has a pending delivery there; as a breaker's probe, the oldest
#: accepted pending row, due or not (SPEC 17).
_ORDERED = """
  AND (e.send_id IS NULL OR NOT EXISTS (
      SELECT 1 FROM events pe JOIN deliveries p ON p.event_id = pe.id
      WHERE pe.send_id = e.send_id AND pe.product = e.product AND pe.id < e.id
        AND p.destination = d.destination AND p.state = {pending}))"""
_DUE = "AND d.next_attempt_at <= :now"
_FREE = "(d.lease_until IS NULL OR d.lease_until < :now)"


def _due(which: str, free: str) -> str:
    """The WHERE and ORDER BY of a claim of kind ``which`` (due, ordered, oldest)."""
    return (f"WHERE d.state = {{pending}} AND d.destination = :destination "
            f"{'' if which == 'oldest' else _DUE} AND {free}"
            f"{_ORDERED if which == 'ordered' else ''}\n"
            f"ORDER BY {'d.event_id' if which == 'oldest' else 'd.next_attempt_at'}")


#: A due row is free when it is not leased or its lease ran out (by the caller's time).
DUE = Statement(f"""
SELECT d.id FROM deliveries d
{_due("due", _FREE)} LIMIT :limit
""", only=Dialect.SQLITE)  # noqa: S608 (constant text)
DUE_ORDERED = Statement(f"""
SELECT d.id FROM deliveries d JOIN events e ON e.id = d.event_id
{_due("ordered", _FREE)} LIMIT :limit
""", only=Dialect.SQLITE)  # noqa: S608 (constant text)
DUE_OLDEST = Statement(f"""
SELECT d.id FROM deliveries d
{_due("oldest", _FREE)} LIMIT :limit
""", only=Dialect.SQLITE)  # noqa: S608 (constant text)

LEASE = Statement("""
UPDATE deliveries SET lease_owner = :owner, lease_until = :lease_until WHERE id IN (:ids)
""", only=Dialect.SQLITE, array=("ids", "bigint"))

CLAIMED = Statement(f"""
SELECT {_CLAIMED_COLUMNS}
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.id IN (:ids) ORDER BY d.next_attempt_at
""", only=Dialect.SQLITE, array=("ids", "bigint"))  # noqa: S608 (a constant column list)

#: A due row is free when it is not leased, its lease ran out (by the caller's time), or
#: its owner has no beat within ``dead_after`` seconds. The owners alive are one
#: uncorrelated subquery, hashed once per statement, so the claim still walks the partial
#: index ``deliveries_due`` rather than the table. (NOT IN is safe: ``owner`` is never NULL,
#: and a NULL lease_owner comes with a NULL lease_until.)
_FREE_ALIVE = """(d.lease_until IS NULL OR d.lease_until < :now
           OR d.lease_owner NOT IN (
               SELECT owner FROM instances WHERE heartbeat_at >= {db_now} - :dead_after))"""


def _claim(which: str) -> Statement:
    join = "JOIN events e ON e.id = d.event_id" if which == "ordered" else ""
    return Statement(f"""
WITH due AS (
    SELECT d.id FROM deliveries d {join}
    {_due(which, _FREE_ALIVE)}
    LIMIT :limit
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries d SET lease_owner = :owner, lease_until = :lease_until
FROM due, events e
WHERE d.id = due.id AND e.id = d.event_id
RETURNING {_CLAIMED_COLUMNS}
""", only=Dialect.POSTGRES)  # noqa: S608 (constant text)


CLAIM = _claim("due")
CLAIM_ORDERED = _claim("ordered")
CLAIM_OLDEST = _claim("oldest")
#: The claim of each kind of Want (Want.kind), per dialect.
DUE_OF = {"due": DUE, "ordered": DUE_ORDERED, "oldest": DUE_OLDEST}
CLAIM_OF = {"due": CLAIM, "ordered": CLAIM_ORDERED, "oldest": CLAIM_OLDEST}

RECORD_ATTEMPT = Statement("""
INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, http_status, error,
                      outcome, replay, answer)
VALUES (:delivery_id, :attempt, :started_at, :duration_ms, :http_status, :error, :state,
        :replay, :answer)
""")

#: The delivery after an attempt: its new state, and free of its lease.
SETTLE = Statement("""
UPDATE deliveries SET state = :state, attempt = :attempt,
       next_attempt_at = coalesce(:next_attempt_at, next_attempt_at),
       lease_owner = NULL, lease_until = NULL, last_error = :error, updated_at = :updated_at
WHERE id = :delivery_id
""")

RELEASE = Statement("""
UPDATE deliveries SET lease_owner = NULL, lease_until = NULL
WHERE lease_owner = :owner AND state = {pending}
""")

#: Run by the one process that owns an SQLite file, on open: leases a killed predecessor
#: left are void.
VOID_LEASES = Statement("""
UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL
""", only=Dialect.SQLITE)

# -- instances (PostgreSQL's several relays) ----------------------------------------------

BEAT = Statement("""
INSERT INTO instances (owner, heartbeat_at)
SELECT unnest(:owners::text[]), {db_now}
ON CONFLICT (owner) DO UPDATE SET heartbeat_at = excluded.heartbeat_at
""", only=Dialect.POSTGRES)

LEAVE = Statement("""
DELETE FROM instances WHERE owner = ANY(:owners::text[])
""", only=Dialect.POSTGRES)

# -- what a health check asks ------------------------------------------------------------

PING = Statement("SELECT 1")

#: Every statement by name (the layout test prepares each on each dialect it serves).
STATEMENTS = collect(globals())
