"""The one table layout and the statements written once (relay/store/sql.py, queries.py,
schema.py), and stores of earlier releases brought to that layout (migrations.py).

Both dialects are created from the layout and compared as each database describes them:
tables, columns (name, a normalised type family, NOT NULL, default), primary and unique
keys, foreign keys with their ON DELETE, and indexes (name, columns, partial predicate).
The PostgreSQL half is skipped, with the reason, without RELAY_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import ast
import itertools
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from conftest import ROOT, fresh_postgres_db

from relay.ingest.signature import token_key
from relay.store import (
    ClaimedDelivery,
    DeliveryState,
    QuarantinedPush,
    Store,
    deliveries,
    lookup,
    open_store,
)
from relay.store import destinations as destination_store
from relay.store import messages as message_store
from relay.store import quarantine as held
from relay.store import queries as q
from relay.store import sessions as session_store
from relay.store.base import QuarantineState
from relay.store.migrations import LATEST, migrate_postgres, migrate_sqlite
from relay.store.migrations import STATEMENTS as MIGRATION_STATEMENTS
from relay.store.postgres import PostgresStore
from relay.store.schema import POSTGRES_ONLY
from relay.store.sql import Dialect, Statement, from_row
from relay.store.sqlite import SqliteStore

Layout = dict[str, Any]

FAMILIES = {"integer": "integer", "bigint": "integer", "text": "text", "real": "real",
            "double precision": "real", "blob": "blob", "bytea": "blob"}


def _predicate(text: str | None) -> str | None:
    """A partial index's WHERE as both databases can be made to say it."""
    if text is None:
        return None
    text = re.sub(r"::\w+", "", text).strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    return " ".join(text.lower().split())


def _default(text: str | None) -> str | None:
    if text is None or text.startswith("nextval("):  # BIGSERIAL's sequence: the rowid's job
        return None
    return re.sub(r"::\w+", "", text)


def describe_sqlite(path: Path) -> Layout:
    conn = sqlite3.connect(path)
    try:
        tables = sorted(r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"))
        layout: Layout = {"tables": tables, "columns": {}, "keys": {}, "foreign": {},
                          "indexes": {}}
        for table in tables:
            info = conn.execute(f"PRAGMA table_info({table})").fetchall()
            layout["columns"][table] = [
                (name, FAMILIES[kind.lower()], bool(notnull or pk), _default(default))
                for _, name, kind, notnull, default, pk in info]
            primary = tuple(r[1] for r in sorted(info, key=lambda r: r[5]) if r[5])
            uniques = set()
            for _, index, unique, origin, _ in conn.execute(f"PRAGMA index_list({table})"):
                columns = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({index})"))
                if origin == "u":
                    uniques.add(columns)
                elif origin == "c":
                    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?",
                                       (index,)).fetchone()[0]
                    where = sql.split(" WHERE ", 1)[1] if " WHERE " in sql else None
                    layout["indexes"][index] = (table, columns, bool(unique), _predicate(where))
            layout["keys"][table] = (primary, sorted(uniques))
            layout["foreign"][table] = sorted(
                (r[3], r[2], r[4], r[6]) for r in conn.execute(f"PRAGMA foreign_key_list({table})"))
        return layout
    finally:
        conn.close()


async def describe_postgres(url: str) -> Layout:
    conn = await asyncpg.connect(url)
    try:
        tables = sorted(r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        layout: Layout = {"tables": tables, "columns": {}, "keys": {}, "foreign": {},
                          "indexes": {}}
        for table in tables:
            layout["columns"][table] = [
                (r["column_name"], FAMILIES[r["data_type"]], r["is_nullable"] == "NO",
                 _default(r["column_default"]))
                for r in await conn.fetch(
                    "SELECT column_name, data_type, is_nullable, column_default"
                    " FROM information_schema.columns WHERE table_schema = 'public'"
                    " AND table_name = $1 ORDER BY ordinal_position", table)]
            primary: tuple[str, ...] = ()
            uniques = set()
            for r in await conn.fetch(_PG_INDEXES, table):
                columns = tuple(r["columns"])
                if r["indisprimary"]:
                    primary = columns
                elif r["constraint"]:
                    uniques.add(columns)
                else:
                    layout["indexes"][r["name"]] = (table, columns, r["indisunique"],
                                                    _predicate(r["predicate"]))
            layout["keys"][table] = (primary, sorted(uniques))
            layout["foreign"][table] = sorted(
                (r["from_column"], r["to_table"], r["to_column"],
                 _PG_ACTIONS[r["confdeltype"]])
                for r in await conn.fetch(_PG_FOREIGN, table))
        return layout
    finally:
        await conn.close()


_PG_INDEXES = """
SELECT i.relname AS name, ix.indisunique, ix.indisprimary,
       pg_get_expr(ix.indpred, ix.indrelid) AS predicate,
       EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid) AS constraint,
       ARRAY(SELECT a.attname FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum
             ORDER BY k.n) AS columns
FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid
JOIN pg_class t ON t.oid = ix.indrelid
WHERE t.relname = $1
"""

_PG_FOREIGN = """
SELECT a.attname AS from_column, r.relname AS to_table, ra.attname AS to_column,
       c.confdeltype::text AS confdeltype
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
JOIN pg_class r ON r.oid = c.confrelid
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1]
WHERE c.contype = 'f' AND t.relname = $1
"""

_PG_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL",
               "d": "SET DEFAULT"}


async def new_sqlite(path: Path) -> Path:
    store = SqliteStore(path)
    await store.open()
    await store.close()
    return path


async def new_postgres(url: str) -> str:
    store = PostgresStore(url)
    await store.open()
    await store.close()
    return url


@pytest.fixture
async def second_postgres_url() -> AsyncIterator[str]:
    async with fresh_postgres_db() as url:
        yield url


# -- one layout ---------------------------------------------------------------------------


async def test_both_dialects_create_the_one_layout(tmp_path: Path, postgres_url: str) -> None:
    """A new SQLite store and a new PostgreSQL store have the same tables, columns, keys,
    foreign keys and indexes."""
    sqlite = describe_sqlite(await new_sqlite(tmp_path / "relay.db"))
    postgres = await describe_postgres(await new_postgres(postgres_url))
    assert sqlite["tables"] == postgres["tables"]
    for part in ("columns", "keys", "foreign"):
        assert sqlite[part] == postgres[part], part
    pg_only = {name: postgres["indexes"].pop(name) for name in POSTGRES_ONLY}
    assert sqlite["indexes"] == postgres["indexes"]
    assert pg_only["deliveries_leased"][:2] == ("deliveries", ("lease_owner",))
    # What the old SQLite layout lacked is there.
    assert sqlite["indexes"]["events_received"] == ("events", ("received_at",), False, None)
    assert ("event_id", "events", "id", "CASCADE") in sqlite["foreign"]["deliveries"]
    assert "instances" in sqlite["tables"]


# -- stores of earlier releases -----------------------------------------------------------

OLD = time.time() - 30 * 86400


def old_rows(version: int, dialect: Dialect) -> list[tuple[str, tuple[Any, ...]]]:
    """Rows as an earlier release wrote them: a delivered event (with its attempt), a dead
    letter (3 attempts), a pending delivery leased by an instance long gone, a token, a
    quarantined push. SQL of the old layout, so written here and nowhere else."""
    tokens = version < (2 if dialect is Dialect.SQLITE else 3)
    event = ("INSERT INTO events (id, webhook_id, identity, token, product, event, tag, fields,"
             " body, content_type, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)")
    delivery = ("INSERT INTO deliveries (id, event_id, destination, state, attempt,"
                " next_attempt_at, expires_at, lease_owner, lease_until, last_error,"
                " updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)")
    attempt = ("INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms,"
               " http_status, error, outcome) VALUES (?,?,?,?,?,?,?)")
    rows: list[tuple[str, tuple[Any, ...]]] = [
        (event, (n, f"msg_{n}", f"identity-{n}", f"token-{n}", "sms", "delivered", None,
                 f'{{"n":{n}}}', b"n=1", "application/x-www-form-urlencoded", OLD))
        for n in (1, 2, 3)]
    rows += [
        (delivery, (11, 1, "a", "delivered", 1, OLD, OLD + 3600, None, None, None, OLD)),
        (delivery, (12, 2, "a", "dead", 3, OLD, OLD + 3600, None, None, "HTTP 400", OLD)),
        (delivery, (13, 3, "a", "pending", 0, OLD, OLD + 10**9, "ghost", OLD + 10**9, None,
                    OLD)),
        (attempt, (11, 1, OLD, 5.0, 200, None, "delivered")),
        *((attempt, (12, n, OLD, 5.0, 400, "HTTP 400", "dead" if n == 3 else "pending"))
          for n in (1, 2, 3)),
        ("INSERT INTO quarantine (identity, subhook_path, product, fields, body, content_type,"
         " problems, received_at) VALUES (?,?,?,?,?,?,?,?)",
         ("q-1", "/subhook/sms", "sms", "{}", b"", "text/plain", '["x: bad"]', OLD)),
        ("INSERT INTO tokens (token, seen_at) VALUES (?, ?)" if tokens else
         "INSERT INTO token_memory (key, seen_at) VALUES (?, ?)",
         ("token-1" if tokens else token_key("token-1"), OLD)),
    ]
    if dialect is Dialect.POSTGRES:
        rows = [(_dollars(sql), values) for sql, values in rows]
    return rows


def _dollars(sql: str) -> str:
    numbers = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(numbers)}", sql)


async def assert_kept_and_working(store: Store) -> None:
    """The old rows, read and written through the store of today."""
    assert await deliveries.counts(store) == (1, 1)
    (dead,) = await deliveries.dead_letters(store)
    assert (dead["id"], dead["attempt"], dead["last_error"]) == (12, 3, "HTTP 400")
    assert [a["http_status"] for a in await deliveries.attempts(store, 12)] == [400, 400, 400]
    (kept,) = await held.quarantined(store)
    assert kept["problems"] == ["x: bad"]
    assert await store.seen("token-1", "nothing")
    assert await store.seen("nothing", "identity-2")
    # The lease of an instance long gone is void; the row comes back by column name.
    (claimed,) = await store.claim("a", 10, "w", time.time() + 60, time.time())
    assert claimed == ClaimedDelivery(13, 3, "a", 0, OLD + 10**9, "msg_3", "sms", "delivered",
                                      '{"n":3}', b"n=1", "application/x-www-form-urlencoded")
    # The delivered event goes with its deliveries and attempts (ON DELETE CASCADE).
    assert await deliveries.prune(store, time.time(), time.time()) == (1, 1)
    assert await deliveries.attempts(store, 11) == []
    assert [d["id"] for d in await deliveries.dead_letters(store)] == [12]
    assert await deliveries.replay_dead(store, [12], time.time(), 3600) == [12]
    qid = await store.quarantine(QuarantinedPush("q-2", "/subhook/sms", "sms", "{}", b"",
                                                 "text/plain", '["y"]', time.time()))
    await held.resolve(store, qid, None, "done")
    assert [row["id"] for row in await held.quarantined(store)] == [1]


@pytest.mark.parametrize("version", [1, 2, 4])
async def test_an_old_sqlite_store_is_brought_to_the_layout_with_its_rows(
    tmp_path: Path, version: int
) -> None:
    """A store an earlier release left at version 1 or 2 (tables rebuilt for ON DELETE
    CASCADE, rows copied) or 4 (with ``deliveries_leased``, PostgreSQL's only since 5)
    opens, keeps its rows, and then has a new store's layout."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate_sqlite(conn, target=version)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert ("deliveries_leased" in indexes) is (version == 4)
    conn.execute("PRAGMA foreign_keys=ON")
    with conn:
        for sql, values in old_rows(version, Dialect.SQLITE):
            conn.execute(sql, values)
    conn.close()
    store = open_store(f"sqlite:///{path}")
    await store.open()
    try:
        await assert_kept_and_working(store)
    finally:
        await store.close()
    assert describe_sqlite(path) == describe_sqlite(await new_sqlite(tmp_path / "new.db"))
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT version FROM schema_version").fetchall() \
            == [(v,) for v in range(1, LATEST + 1)]
        assert check.execute("PRAGMA foreign_key_check").fetchall() == []


@pytest.mark.parametrize("version", [1, 2, 3, 4])
async def test_an_old_postgres_store_is_brought_to_the_layout_with_its_rows(
    postgres_url: str, second_postgres_url: str, version: int
) -> None:
    """A database an earlier release left at version 1, 2 or 3 opens, keeps its rows, and
    then has a new database's layout."""
    conn = await asyncpg.connect(postgres_url)
    try:
        await migrate_postgres(conn, target=version)
        for sql, values in old_rows(version, Dialect.POSTGRES):
            await conn.execute(sql, *values)
    finally:
        await conn.close()
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        await assert_kept_and_working(store)
    finally:
        await store.close()
    assert await describe_postgres(postgres_url) \
        == await describe_postgres(await new_postgres(second_postgres_url))
    conn = await asyncpg.connect(postgres_url)
    try:
        assert [r["version"] for r in await conn.fetch("SELECT version FROM schema_version"
                                                       " ORDER BY version")] \
            == list(range(1, LATEST + 1))
    finally:
        await conn.close()


# -- statements written once --------------------------------------------------------------

STATEMENTS = {
    **q.STATEMENTS, **MIGRATION_STATEMENTS, **lookup.STATEMENTS, **message_store.STATEMENTS,
    **destination_store.STATEMENTS, **deliveries.STATEMENTS, **held.STATEMENTS,
    **session_store.STATEMENTS,
    # event listings: no filter; every filter (dead, so deliveries_dead serves it); a page
    "LIST_ALL": lookup.listing(lookup.EventFilter(), paged=False),
    "LIST_EVERY_FILTER": lookup.listing(lookup.EventFilter(
        "s", ("c",), "sms", "delivered", DeliveryState.DEAD, 1.0, 2.0), paged=True),
    "LIST_PENDING_PAGE": lookup.listing(lookup.EventFilter(state=DeliveryState.PENDING),
                                        paged=True),
}


def served(dialect: Dialect) -> list[Statement]:
    return [s for s in STATEMENTS.values() if s.only in (None, dialect)]


def dummy_args(statement: Statement) -> tuple[Any, ...]:
    return tuple([1, 2] if name == (statement.array or ("",))[0] else None
                 for name in statement.params)


async def test_every_statement_compiles_on_sqlite(tmp_path: Path) -> None:
    """Each statement SQLite runs is valid against the layout (EXPLAIN compiles it)."""
    conn = sqlite3.connect(await new_sqlite(tmp_path / "relay.db"))
    try:
        for statement in served(Dialect.SQLITE):
            text, args = statement.sqlite_call(dummy_args(statement))
            conn.execute(f"EXPLAIN {text}", args)
    finally:
        conn.close()


async def test_every_statement_prepares_on_postgres(postgres_url: str) -> None:
    """Each statement PostgreSQL runs is valid against the layout (the server prepares it,
    resolving every table, column and parameter type)."""
    conn = await asyncpg.connect(await new_postgres(postgres_url))
    try:
        for statement in served(Dialect.POSTGRES):
            await conn.prepare(statement.postgres)
    finally:
        await conn.close()


def test_no_statement_is_written_twice() -> None:
    texts = [" ".join(s.text(s.only or Dialect.SQLITE).split()) for s in STATEMENTS.values()]
    assert len(set(texts)) == len(texts)


SQL_START = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|WITH)\s")
SQL_HOMES = {"queries.py", "lookup.py", "messages.py", "destinations.py", "deliveries.py",
             "quarantine.py", "sessions.py", "schema.py", "migrations.py", "legacy.py"}


def test_sql_is_written_only_in_the_statement_modules() -> None:
    """No string in relay/ outside the statements, the layout and the migrations starts
    like a statement: the stores run named statements, nothing else."""
    found = []
    for path in sorted((ROOT / "relay").rglob("*.py")):
        if path.parent.name == "store" and path.name in SQL_HOMES:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and SQL_START.match(node.value):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_states_in_the_sql_come_from_their_enums() -> None:
    """No state is spelt in the SQL: each is rendered from DeliveryState or
    QuarantineState (or bound as one)."""
    store = ROOT / "relay" / "store"
    for name in ("queries.py", "schema.py"):
        text = (store / name).read_text(encoding="utf-8")
        for state in [*DeliveryState, *QuarantineState]:
            assert f"'{state.value}'" not in text, (name, state)


# -- translation and rows -----------------------------------------------------------------


def test_named_parameters_are_numbered_once_per_dialect() -> None:
    """``:name`` becomes ?n / $n in order of first use, a repeat reuses its number, a
    PostgreSQL cast is left alone, and values are put in that order by name."""
    statement = Statement("SELECT :b, :a::text, :b WHERE x = {dead}")
    assert statement.sqlite == "SELECT ?1, ?2::text, ?1 WHERE x = 'dead'"
    assert statement.postgres == "SELECT $1, $2::text, $1 WHERE x = 'dead'"
    assert statement.args(a="A", b="B") == statement.bind(b="B", a="A") == ("B", "A")
    for wrong in ({"a": "A"}, {"a": "A", "b": "B", "c": "C"}):
        with pytest.raises(TypeError):
            statement.bind(**wrong)
    record = QuarantinedPush("i", "/p", "sms", "{}", b"", "t", "[]", 1.0)
    named = Statement("SELECT :product, :state, :identity")
    assert named.args(record, state="held") == ("sms", "held", "i")  # attributes, then names
    with pytest.raises(TypeError):
        named.args(record, stat="held")
    listed = Statement("SELECT x FROM t WHERE y = :y AND x IN (:ids)", array=("ids", "bigint"))
    assert listed.postgres == "SELECT x FROM t WHERE y = $1 AND x = ANY($2::bigint[])"
    assert listed.sqlite_call(listed.args(ids=[7, 8, 9], y=0)) \
        == ("SELECT x FROM t WHERE y = ?1 AND x IN (?2,?3,?4)", (0, 7, 8, 9))
    with pytest.raises(LookupError, match="postgres only"):
        _ = q.INGEST.sqlite


def test_rows_become_records_by_column_name() -> None:
    """Columns in any order (here reversed) make the same record."""
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    names = [f.name for f in ClaimedDelivery.__dataclass_fields__.values()]
    record = ClaimedDelivery(1, 2, "dest", 0, 9.5, "msg_1", "sms", "delivered", "{}", b"",
                             "text/plain")
    select = ", ".join(f"? AS {name}" for name in reversed(names))
    row = conn.execute(f"SELECT {select}", [getattr(record, n) for n in reversed(names)])
    assert from_row(ClaimedDelivery, row.fetchone()) == record


#: What each store module may define itself: its lifetime, the two primitives every named
#: statement runs through, and the hot path (tuned per backend). Every other query is one
#: function over read/change (deliveries.py, quarantine.py, lookup.py, ...).
PER_STORE = {"open", "close", "ping", "read", "change", "ingest", "seen", "quarantine",
             "claim", "claim_due", "record", "release"}


def test_operator_queries_are_written_once_not_per_store() -> None:
    """The store classes define only lifetime, read/change and the hot path: an operator
    query written in both store modules (the smell issue 27 cleared) fails here."""
    for name in ("sqlite.py", "postgres.py"):
        tree = ast.parse((ROOT / "relay" / "store" / name).read_text(encoding="utf-8"))
        (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef)]
        public = {n.name for n in cls.body if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef)
                  and not n.name.startswith("_")}
        assert public <= PER_STORE, (name, sorted(public - PER_STORE))


def test_every_statement_module_is_collected() -> None:
    """Every module of relay/store/ that names statements hands them all to STATEMENTS
    (so each is prepared on each dialect above), and no name is taken twice."""
    names: list[str] = []
    for path in sorted((ROOT / "relay" / "store").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                    and getattr(node.value.func, "id", "") == "Statement":
                names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert {n.lower() for n in names} <= set(STATEMENTS) | {"claim", "claim_ordered",
                                                              "claim_oldest"}
