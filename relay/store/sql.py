"""How SQL is written once and run on SQLite and PostgreSQL alike.

A statement is one dialect-neutral text (relay/store/queries.py). Its parameters are
``:name``; ``{word}`` stands for text that differs by dialect (a type or a function, the
``DIALECTS`` table below) or for a state, rendered from its StrEnum as a quoted literal.
At import the text is rendered for each dialect it serves and its parameters are numbered
once, in order of first use: ``?1``, ``?2``.. for sqlite3 (SQLite's numbered form, so a
parameter used twice is bound once, as in PostgreSQL) and ``$1``, ``$2``.. for asyncpg. A
call names its values (``stmt.args(key=k, seen_at=t)``, or a record whose attributes carry
the names, ``stmt.args(event)``), and they are put in that order: no caller counts
placeholders, and rows come back as records by column name (``from_row``), never by
position.

One parameter of a statement may be a list, written ``IN (:ids)``: PostgreSQL binds it as
one array (``= ANY($n::bigint[])``), SQLite as one ``?`` per item, expanded at the call.
"""

from __future__ import annotations

import dataclasses
import keyword
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from operator import attrgetter, itemgetter
from typing import Any, Protocol, TypeVar

from relay.store.base import DeliveryState, QuarantineState


class Dialect(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


#: Filtered-on states are literals in the text, not parameters: a partial index
#: (``deliveries_due``, ``deliveries_dead``) serves only a query whose text names its state.
STATES = {member.name.lower(): f"'{member.value}'"
          for enum in (DeliveryState, QuarantineState) for member in enum}

#: What ``{word}`` becomes in each dialect. A word a dialect lacks cannot be used by a
#: statement that dialect serves: rendering fails at import.
DIALECTS: Mapping[Dialect, Mapping[str, str]] = {
    Dialect.SQLITE: {
        **STATES,
        "id": "INTEGER PRIMARY KEY",  # the rowid: the fastest key SQLite has
        "ref": "INTEGER",
        "real": "REAL",
        "blob": "BLOB",
        "without_rowid": " WITHOUT ROWID",
        "db_now": "((julianday('now') - 2440587.5) * 86400.0)",
        "greatest": "max",
    },
    Dialect.POSTGRES: {
        **STATES,
        "id": "BIGSERIAL PRIMARY KEY",
        "ref": "BIGINT",
        "real": "DOUBLE PRECISION",
        "blob": "BYTEA",
        "without_rowid": "",
        # The database's clock, never an instance's: instances on several hosts may
        # disagree about the time (see postgres.py's heartbeats).
        "db_now": "extract(epoch FROM clock_timestamp())::float8",
        "greatest": "greatest",
    },
}

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def render(text: str, dialect: Dialect) -> str:
    """``text`` with its ``{word}``s replaced for ``dialect``."""
    return text.format_map(DIALECTS[dialect])


class Statement:
    """One statement, rendered for the dialects it serves (both unless ``only``): its text
    for each is ``.sqlite`` and ``.postgres``.

    ``array`` names a list parameter and its PostgreSQL element type, for ``IN (:name)``.
    """

    __slots__ = ("_by_attr", "_expanded", "_mixed", "array", "bind", "name", "only",
                 "params", "postgres", "sqlite")
    sqlite: str
    postgres: str

    def __init__(self, text: str, *, only: Dialect | None = None,
                 array: tuple[str, str] | None = None) -> None:
        self.name = "?"  # set by collect()
        self.only = only
        self.array = array
        dialects = [only] if only else list(Dialect)
        rendered = {d: render(text, d) for d in dialects}
        first = rendered[dialects[0]]
        names = list(dict.fromkeys(_PARAM.findall(first)))
        if array is not None:
            if first.count(f"IN (:{array[0]})") != 1 or names.count(array[0]) != 1:
                raise ValueError(f"list parameter {array[0]} must appear once, as IN (:name)")
            names.remove(array[0])
            names.append(array[0])  # last, so SQLite's expansion numbers on from it
        self.params: tuple[str, ...] = tuple(names)
        number = {name: i for i, name in enumerate(names, start=1)}
        for dialect, body in rendered.items():
            setattr(self, dialect.value, _numbered(body, dialect, number, array))
        self._expanded: dict[int, str] = {}
        self._by_attr = _attr_getter(self.params)
        self._mixed: dict[tuple[str, ...], Callable[[object, dict[str, Any]], tuple[Any, ...]]] = {}
        #: ``bind(name=value, ...)``: the values in their numbered order; every parameter
        #: and no other must be named (the cheapest way to bind by name, for hot paths)
        self.bind: Callable[..., tuple[Any, ...]] = _binder(self.params)

    def __getattr__(self, name: str) -> Any:
        # Only reached for the text of a dialect the statement does not serve.
        if name in Dialect.__members__.values():
            raise LookupError(f"statement {self.name} is written for {self.only} only")
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"<Statement {self.name}>"

    def text(self, dialect: Dialect) -> str:
        text: str = getattr(self, dialect.value)
        return text

    def args(self, source: object = None, /, **values: Any) -> tuple[Any, ...]:
        """The values of the parameters, in their numbered order: each taken from
        ``values`` by name, else from the attribute of that name of ``source``."""
        if source is None:
            return self.bind(**values)
        if not values:
            return self._by_attr(source)
        given = tuple(values)
        mixed = self._mixed.get(given)
        if mixed is None:
            unknown = set(given) - set(self.params)
            if unknown:
                raise TypeError(f"statement {self.name} takes no {sorted(unknown)}")
            mixed = self._mixed[given] = _generated(
                "mixed(source, values)", [f"values[{p!r}]" if p in given else f"source.{p}"
                                          for p in self.params])
        return mixed(source, values)

    def sqlite_call(self, args: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
        """The SQLite text and its arguments; a list parameter (the last) becomes one
        placeholder per item."""
        if self.array is None:
            return self.sqlite, args
        *scalars, items = args
        text = self._expanded.get(len(items))
        if text is None:
            first = len(scalars) + 1
            marks = ",".join(f"?{first + i}" for i in range(len(items)))
            text = self.sqlite.replace(f"IN (?{first})", f"IN ({marks})")
            if len(self._expanded) < 512:  # the lengths claims and replays use
                self._expanded[len(items)] = text
        return text, (*scalars, *items)


Getter = Callable[[Any], tuple[Any, ...]]


def _binder(names: tuple[str, ...]) -> Callable[..., tuple[Any, ...]]:
    """``def bind(*, a, b): return (a, b)`` for ``names``: Python itself matches the
    keywords, with no dict built per call (as dataclasses and namedtuple make __init__).
    The names are identifiers matched by _PARAM, never values."""
    if not names:
        return lambda: ()
    if any(keyword.iskeyword(name) for name in names):
        raise ValueError(f"a parameter may not be a Python keyword: {names}")
    return _generated(f"bind(*, {', '.join(names)})", names)


def _generated(signature: str, items: Iterable[str]) -> Callable[..., tuple[Any, ...]]:
    """``def <signature>: return (<items>,)``, compiled once. Only parameter names (checked
    identifiers) are formatted into it, never values."""
    namespace: dict[str, Any] = {}
    exec(f"def {signature}:\n    return ({', '.join(items)},)\n", namespace)  # noqa: S102
    function: Callable[..., tuple[Any, ...]] = next(
        v for k, v in namespace.items() if k != "__builtins__")
    return function


def _attr_getter(names: tuple[str, ...]) -> Getter:
    """A function taking the attributes ``names`` of an object, always as a tuple
    (operator.attrgetter, which runs in C, returns a bare value for a single name)."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        attr = attrgetter(names[0])
        return lambda source: (attr(source),)
    return lambda source: ()


def collect(namespace: Mapping[str, Any]) -> dict[str, Statement]:
    """The statements of a module's namespace, each told its name."""
    found = {name.lower(): value for name, value in namespace.items()
             if isinstance(value, Statement)}
    for name, statement in found.items():
        statement.name = name
        statement.bind.__qualname__ = f"{name}.bind"  # what its TypeErrors are about
    return found


def _numbered(body: str, dialect: Dialect, number: Mapping[str, int],
              array: tuple[str, str] | None) -> str:
    if dialect is Dialect.SQLITE:
        return _PARAM.sub(lambda m: f"?{number[m[1]]}", body)
    if array is not None:
        body = body.replace(f"IN (:{array[0]})", f"= ANY(:{array[0]}::{array[1]}[])")
    return _PARAM.sub(lambda m: f"${number[m[1]]}", body)


class Row(Protocol):
    """A result row that answers by column name (sqlite3.Row, asyncpg.Record)."""

    def __getitem__(self, key: str, /) -> Any: ...
    def keys(self) -> Iterable[str]: ...


R = TypeVar("R")


_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def records(cls: type[R], rows: Sequence[Row]) -> list[R]:
    """The dataclass ``cls`` from each row, each field from the column of its name (a
    missing column fails loudly; columns it has no field for are ignored). The names are
    looked up once per result, not once per row."""
    if not rows:
        return []
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    columns = list(rows[0].keys())
    try:
        positions = [columns.index(name) for name in names]
    except ValueError as exc:
        raise LookupError(f"{cls.__name__}: the rows lack a column ({exc})") from None
    pick: Callable[[Any], Any] = itemgetter(*positions)
    if len(positions) == 1:  # itemgetter of one position answers the bare value
        single = pick
        pick = lambda row: (single(row),)  # noqa: E731
    return [cls(*pick(row)) for row in rows]


def from_row(cls: type[R], row: Row) -> R:
    return records(cls, [row])[0]


def as_dicts(rows: Iterable[Row]) -> list[dict[str, Any]]:
    return [dict(row) for row in rows]


class Readable(Protocol):
    """What the statement modules' functions need of a store: its two ways to run a named
    statement (both stores provide them; see relay.store.base.Store)."""

    async def read(self, statement: Statement, **values: Any) -> list[dict[str, Any]]: ...
    async def change(self, statement: Statement, **values: Any) -> list[dict[str, Any]]: ...
