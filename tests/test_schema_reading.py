"""Reading a SQLite schema again takes the tables whose SQL is unchanged from what was
read before (verify reads the scratch database twice for every revision): whatever DDL
ran in between, that gives exactly what reading every table afresh gives. Real SQLite,
statements drawn by hypothesis."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
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
