"""A database's schema as plain data, and the differences between two of them. Pure.

``verify`` fills a ``Schema`` from SQLAlchemy's inspector (the only place that talks to a
database) and compares: the schema before a revision's upgrade with the one after its
downgrade, or the live database with a scratch one built by the migrations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

Change = Literal["added", "removed", "changed"]
T = TypeVar("T")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    default: str | None
    comment: str | None = None  # where the dialect keeps comments (PostgreSQL, MariaDB)

    def describe(self) -> str:
        default = "" if self.default is None else f" DEFAULT {self.default}"
        comment = "" if self.comment is None else f" COMMENT {self.comment!r}"
        return f"{self.type}{'' if self.nullable else ' NOT NULL'}{default}{comment}"


@dataclass(frozen=True)
class Index:
    name: str | None
    columns: tuple[str, ...]
    unique: bool = False

    @property
    def key(self) -> str:
        return self.name or f"({', '.join(self.columns)})"

    def describe(self) -> str:
        return f"{'UNIQUE ' if self.unique else ''}({', '.join(self.columns)})"


@dataclass(frozen=True)
class ForeignKey:
    name: str | None
    columns: tuple[str, ...]
    referred_table: str
    referred_columns: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.name or f"({', '.join(self.columns)}) -> {self.referred_table}"

    def describe(self) -> str:
        return (
            f"({', '.join(self.columns)}) REFERENCES {self.referred_table} "
            f"({', '.join(self.referred_columns)})"
        )


@dataclass(frozen=True)
class Check:
    name: str | None
    sqltext: str

    @property
    def key(self) -> str:
        return self.name or f"CHECK ({self.sqltext})"

    def describe(self) -> str:
        return f"CHECK ({self.sqltext})"


@dataclass(frozen=True)
class Table:
    """A table's schema; ``rows`` (how many) and ``checksum`` (of its rows, in order) when
    they were read, compared only when both sides have them."""

    name: str
    columns: Mapping[str, Column] = field(default_factory=dict)
    primary_key: tuple[str, ...] = ()
    indexes: Mapping[str, Index] = field(default_factory=dict)
    uniques: Mapping[str, Index] = field(default_factory=dict)
    foreign_keys: Mapping[str, ForeignKey] = field(default_factory=dict)
    checks: Mapping[str, Check] = field(default_factory=dict)
    comment: str | None = None
    rows: int | None = None
    checksum: str | None = None

    @classmethod
    def of(
        cls,
        name: str,
        *,
        columns: Iterable[Column],
        primary_key: Iterable[str] = (),
        indexes: Iterable[Index] = (),
        uniques: Iterable[Index] = (),
        foreign_keys: Iterable[ForeignKey] = (),
        checks: Iterable[Check] = (),
        comment: str | None = None,
        rows: int | None = None,
        checksum: str | None = None,
    ) -> Table:
        return cls(
            name,
            {c.name: c for c in columns},
            tuple(primary_key),
            {i.key: i for i in indexes},
            {u.key: u for u in uniques},
            {f.key: f for f in foreign_keys},
            {c.key: c for c in checks},
            comment,
            rows,
            checksum,
        )


@dataclass(frozen=True)
class EnumType:
    name: str
    labels: tuple[str, ...]

    def describe(self) -> str:
        return f"({', '.join(repr(label) for label in self.labels)})"


@dataclass(frozen=True)
class Schema:
    tables: Mapping[str, Table] = field(default_factory=dict)
    enums: Mapping[str, EnumType] = field(default_factory=dict)


@dataclass(frozen=True)
class Difference:
    """One object that is in ``new`` and not in ``old`` (``added``), the reverse
    (``removed``), or in both but not the same (``changed``). ``old`` and ``new`` describe
    it on each side ("VARCHAR(100) NOT NULL"), None where it is absent."""

    kind: str  # "table", "column", "index", "unique constraint", "foreign key", ...
    name: str  # "posts", "users.email", "users.ix_users_email", "mood"
    change: Change
    old: str | None = None
    new: str | None = None
    database: str = ""  # which one, when a project migrates several ("" the default)

    def as_dict(self) -> dict[str, str | None]:
        found = {
            "kind": self.kind,
            "name": self.name,
            "change": self.change,
            "old": self.old,
            "new": self.new,
        }
        return found | ({"database": self.database} if self.database else {})

    @property
    def where(self) -> str:
        """The object as messages quote it: "'users.email'", with its database when
        there are several ("'tags' in database 'auth'")."""
        return f"'{self.name}'" + (f" in database '{self.database}'" if self.database else "")


def compare_each(old: Mapping[str, Schema], new: Mapping[str, Schema]) -> tuple[Difference, ...]:
    """``compare`` for each database (by name) of a project that migrates several, each
    difference naming its database; one database's are as ``compare`` gives them. A
    database on one side only is compared with an empty one."""
    names = sorted(old.keys() | new.keys())
    if len(names) == 1:
        return compare(old.get(names[0], Schema()), new.get(names[0], Schema()))
    return tuple(
        replace(diff, database=name or "<default>")
        for name in names
        for diff in compare(old.get(name, Schema()), new.get(name, Schema()))
    )


def compare(old: Schema, new: Schema) -> tuple[Difference, ...]:
    """What differs from ``old`` to ``new``: a table on one side only is one difference,
    not one per column. Ordered by table, then kind, for a stable report."""
    found: list[Difference] = []
    for name in sorted(old.tables.keys() | new.tables.keys()):
        before, after = old.tables.get(name), new.tables.get(name)
        if before is None or after is None:
            found.append(
                Difference(
                    "table",
                    name,
                    "added" if before is None else "removed",
                    None if before is None else _columns_of(before),
                    None if after is None else _columns_of(after),
                )
            )
            continue
        found.extend(_compare_tables(before, after))
    found.extend(_compare_maps("enum type", "", old.enums, new.enums, EnumType.describe))
    return tuple(found)


def _columns_of(table: Table) -> str:
    return f"({', '.join(table.columns)})"


def _compare_tables(old: Table, new: Table) -> list[Difference]:
    name = old.name
    found = _compare_maps("column", name, old.columns, new.columns, Column.describe)
    if old.primary_key != new.primary_key:
        found.append(
            Difference(
                "primary key",
                name,
                "changed",
                f"({', '.join(old.primary_key)})",
                f"({', '.join(new.primary_key)})",
            )
        )
    found += _compare_maps("index", name, old.indexes, new.indexes, Index.describe)
    found += _compare_maps("unique constraint", name, old.uniques, new.uniques, Index.describe)
    found += _compare_maps(
        "foreign key", name, old.foreign_keys, new.foreign_keys, ForeignKey.describe
    )
    found += _compare_maps("check constraint", name, old.checks, new.checks, Check.describe)
    if old.comment != new.comment:
        change: Change = (
            "added" if old.comment is None else "removed" if new.comment is None else "changed"
        )
        found.append(
            Difference(
                "table comment",
                name,
                change,
                None if old.comment is None else repr(old.comment),
                None if new.comment is None else repr(new.comment),
            )
        )
    found += _compare_rows(old, new)
    return found


def _compare_rows(old: Table, new: Table) -> list[Difference]:
    """How many rows, else (the same number) whether they are the same rows."""
    if old.rows is not None and new.rows is not None and old.rows != new.rows:
        return [Difference("rows", old.name, "changed", _rows(old.rows), _rows(new.rows))]
    if old.checksum is not None and new.checksum is not None and old.checksum != new.checksum:
        return [Difference("content", old.name, "changed", old.checksum, new.checksum)]
    return []


def _rows(count: int) -> str:
    return f"{count} row{'' if count == 1 else 's'}"


def _compare_maps(
    kind: str, table: str, old: Mapping[str, T], new: Mapping[str, T], describe: Callable[[T], str]
) -> list[Difference]:
    found = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        name = f"{table}.{key}" if table else key
        change: Change = "added" if before is None else "removed" if after is None else "changed"
        found.append(
            Difference(
                kind,
                name,
                change,
                None if before is None else describe(before),
                None if after is None else describe(after),
            )
        )
    return found
