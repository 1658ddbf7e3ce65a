"""Reading a schema again takes the tables the catalog says the same of (SQLite's SQL,
PostgreSQL's fingerprint of each table) from what was read before (verify reads the
scratch database twice for every revision): whatever DDL ran in between, that gives
exactly what reading every table afresh gives. Real SQLite, the real PostgreSQL server,
statements drawn by hypothesis."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.pool import StaticPool

from branchmig.schema import Table
from branchmig.verify import Reflected, inspect_connection

TABLES = ["a", "b", "c"]
TYPES = ["INTEGER", "VARCHAR(20)", "TEXT", "NUMERIC(10, 2)"]


def _statements(draw: Any) -> list[str]:
    """CREATE / DROP / ALTER / CREATE INDEX statements over three tables; each may fail
    (a table already there, a column missing): those are skipped when run."""
    table = st.sampled_from(TABLES)
    column = st.sampled_from(["x", "y", "z"])
    create = st.builds(
        lambda t, pk, cols, ref, check: (
            f"CREATE TABLE {t} ({pk} INTEGER PRIMARY KEY"
            + "".join(f", {c} {ty}" for c, ty in cols)
            + (f", r INTEGER REFERENCES {ref}" if ref else "")
            + (f", CHECK ({cols[0][0]} IS NOT NULL)" if check and cols else "")
            + ")"
        ),
        table,
        st.sampled_from(["id", "key"]),
        st.lists(st.tuples(column, st.sampled_from(TYPES)), max_size=3, unique_by=lambda c: c[0]),
        st.one_of(st.none(), table, table.map(lambda t: f"{t} (id)")),
        st.booleans(),
    )
    others = st.one_of(
        table.map(lambda t: f"DROP TABLE {t}"),
        st.builds(
            lambda t, c, ty: f"ALTER TABLE {t} ADD COLUMN {c} {ty}",
            table,
            column,
            st.sampled_from(TYPES),
        ),
        st.builds(
            lambda t, c, u: f"CREATE {'UNIQUE ' if u else ''}INDEX ix_{t}_{c} ON {t} ({c})",
            table,
            column,
            st.booleans(),
        ),
        st.builds(lambda t, c: f"DROP INDEX ix_{t}_{c}", table, column),
        st.builds(lambda t, c: f"ALTER TABLE {t} RENAME COLUMN {c} TO w", table, column),
        st.builds(lambda t, u: f"ALTER TABLE {t} RENAME TO {u}", table, table),
    )
    return draw(st.lists(st.one_of(create, others), min_size=1, max_size=25))


@settings(max_examples=60, deadline=None)
@given(st.composite(_statements)())
def test_a_schema_read_again_is_what_reading_it_afresh_gives(statements: list[str]) -> None:
    engine = create_engine("sqlite://", poolclass=StaticPool)
    reflected: Reflected = {}
    try:
        with engine.connect() as conn:
            for statement in statements:
                try:
                    conn.execute(text(statement))
                except Exception:  # noqa: BLE001 - a statement this state refuses: skipped
                    conn.rollback()
                    continue
                again = inspect_connection(conn, rows=True, reflected=reflected)
                assert again == inspect_connection(conn, rows=True), statement
    finally:
        engine.dispose()


def _referred(table: Table) -> list[tuple[str, ...]]:
    return [fk.referred_columns for fk in table.foreign_keys.values()]


def test_a_foreign_key_naming_no_column_follows_the_other_tables_primary_key() -> None:
    """``REFERENCES parent`` means parent's primary key: when parent is made again with
    another one, the child's unchanged SQL now refers to it."""
    engine = create_engine("sqlite://", poolclass=StaticPool)
    reflected: Reflected = {}
    try:
        with engine.connect() as conn:
            conn.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY, code TEXT)"))
            conn.execute(
                text("CREATE TABLE child (id INTEGER PRIMARY KEY, p INTEGER REFERENCES parent)")
            )
            first = inspect_connection(conn, reflected=reflected)
            assert _referred(first.tables["child"]) == [("id",)]
            conn.execute(text("DROP TABLE parent"))
            conn.execute(text("CREATE TABLE parent (id INTEGER, code TEXT PRIMARY KEY)"))
            again = inspect_connection(conn, reflected=reflected)
            assert _referred(again.tables["child"]) == [("code",)]
            assert again == inspect_connection(conn)
    finally:
        engine.dispose()


def _postgres_statements(draw: Any) -> list[str]:
    """PostgreSQL DDL over three tables; a statement this state refuses is skipped."""
    table = st.sampled_from(TABLES)
    column = st.sampled_from(["x", "y", "z"])
    kind = st.sampled_from(["integer", "varchar(20)", "text", "numeric(10, 2)", "mood"])
    create = st.builds(
        lambda t, cols, ref: (
            f"CREATE TABLE {t} (id serial PRIMARY KEY"
            + "".join(f", {c} {ty}" for c, ty in cols)
            + (f", r integer REFERENCES {ref} (id)" if ref else "")
            + ")"
        ),
        table,
        st.lists(st.tuples(column, kind), max_size=3, unique_by=lambda c: c[0]),
        st.one_of(st.none(), table),
    )
    others = st.one_of(
        table.map(lambda t: f"DROP TABLE {t} CASCADE"),
        st.builds(lambda t, c, ty: f"ALTER TABLE {t} ADD COLUMN {c} {ty}", table, column, kind),
        st.builds(lambda t, c: f"ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL", table, column),
        st.builds(lambda t, c: f"ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT 7", table, column),
        st.builds(lambda t, c: f"ALTER TABLE {t} ALTER COLUMN {c} TYPE text", table, column),
        st.builds(
            lambda t, c: f"ALTER TABLE {t} ADD CONSTRAINT ck_{t}_{c} CHECK ({c} IS NOT NULL)",
            table,
            column,
        ),
        st.builds(
            lambda t, c: f"ALTER TABLE {t} ADD CONSTRAINT uq_{t}_{c} UNIQUE ({c})", table, column
        ),
        st.builds(lambda t, c: f"CREATE INDEX ix_{t}_{c} ON {t} ({c})", table, column),
        st.builds(lambda t, c: f"DROP INDEX ix_{t}_{c}", table, column),
        st.builds(lambda t, c: f"ALTER INDEX ix_{t}_{c} RENAME TO ix_{t}_w", table, column),
        st.builds(lambda t, c: f"ALTER TABLE {t} RENAME COLUMN {c} TO w", table, column),
        st.builds(lambda t, u: f"ALTER TABLE {t} RENAME TO {u}", table, table),
        st.builds(lambda t, c: f"COMMENT ON COLUMN {t}.{c} IS 'about {c}'", table, column),
        table.map(lambda t: f"COMMENT ON TABLE {t} IS 'about {t}'"),
    )
    return draw(st.lists(st.one_of(create, others), min_size=1, max_size=25))


@pytest.mark.postgres
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(statements=st.composite(_postgres_statements)())
def test_a_postgresql_schema_read_again_is_what_reading_it_afresh_gives(
    fresh_postgres_url: str, statements: list[str]
) -> None:
    """Each example in a transaction rolled back, each statement under a savepoint."""
    engine = create_engine(fresh_postgres_url)
    reflected: Reflected = {}
    try:
        with engine.connect() as conn, conn.begin():
            conn.execute(text("CREATE TYPE mood AS ENUM ('happy', 'sad')"))
            for statement in statements:
                try:
                    with conn.begin_nested():
                        conn.execute(text(statement))
                except Exception:  # noqa: BLE001 - a statement this state refuses: skipped
                    continue
                again = inspect_connection(conn, rows=True, reflected=reflected)
                assert again == inspect_connection(conn, rows=True), statement
            conn.rollback()
    finally:
        engine.dispose()
