"""``schema.compare`` and ``compare_each``: pure. What a round trip must give back is
compared object by object (CHECK constraints, comments, row counts and checksums
included), every difference said once, and only the differences there are."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from branchmig.schema import (
    Check,
    Column,
    Difference,
    Schema,
    Table,
    compare,
    compare_each,
)

ID = Column("id", "INTEGER", False, None)


def test_check_constraints_named_or_not_are_compared() -> None:
    old = Schema({"users": Table.of("users", columns=[ID])})
    new = Schema(
        {
            "users": Table.of(
                "users",
                columns=[ID],
                checks=[Check("ck_id", "id > 0"), Check(None, "id < 10")],
            )
        }
    )
    assert compare(old, new) == (
        Difference("check constraint", "users.CHECK (id < 10)", "added", None, "CHECK (id < 10)"),
        Difference("check constraint", "users.ck_id", "added", None, "CHECK (id > 0)"),
    )


def test_comments_on_tables_and_columns_are_compared() -> None:
    old = Schema({"users": Table.of("users", columns=[ID])})
    new = Schema(
        {
            "users": Table.of(
                "users", columns=[Column("id", "INTEGER", False, None, "key")], comment="people"
            )
        }
    )
    assert compare(old, new) == (
        Difference(
            "column", "users.id", "changed", "INTEGER NOT NULL", "INTEGER NOT NULL COMMENT 'key'"
        ),
        Difference("table comment", "users", "added", None, "'people'"),
    )


def test_rows_are_compared_by_count_then_by_checksum_when_both_sides_have_them() -> None:
    def users(rows: int | None, checksum: str | None = None) -> Schema:
        return Schema({"users": Table.of("users", columns=[ID], rows=rows, checksum=checksum)})

    assert compare(users(0), users(1)) == (
        Difference("rows", "users", "changed", "0 rows", "1 row"),
    )
    # A different count is said once, not again as different content.
    assert compare(users(2, "a"), users(3, "b")) == (
        Difference("rows", "users", "changed", "2 rows", "3 rows"),
    )
    assert compare(users(2, "a"), users(2, "b")) == (
        Difference("content", "users", "changed", "a", "b"),
    )
    # Drift reads no rows from the live database: nothing to compare.
    assert compare(users(5, "a"), users(None)) == ()


def test_compare_each_names_the_database_only_when_there_are_several() -> None:
    empty = Schema()
    tags = Schema({"tags": Table.of("tags", columns=[ID])})
    assert compare_each({"": empty}, {"": tags}) == (
        Difference("table", "tags", "added", None, "(id)"),
    )
    found = compare_each({"": empty, "users": empty}, {"": empty, "users": tags})
    assert found == (Difference("table", "tags", "added", None, "(id)", database="users"),)
    assert found[0].where == "'tags' in database 'users'"
    assert found[0].as_dict()["database"] == "users"
    assert "database" not in compare_each({"": empty}, {"": tags})[0].as_dict()


_names = st.sampled_from(["a", "b", "c"])
_columns = st.builds(
    Column,
    _names,
    st.sampled_from(["INTEGER", "TEXT"]),
    st.booleans(),
    st.none() | st.just("0"),
    st.none() | st.just("note"),
)
_tables = st.builds(
    lambda name, columns, checks, comment, rows, checksum: Table.of(
        name,
        columns=columns,
        checks=checks,
        comment=comment,
        rows=rows,
        checksum=checksum,
    ),
    _names,
    st.lists(_columns, max_size=3),
    st.lists(st.builds(Check, st.none() | _names, st.sampled_from(["x > 0", "y < 1"])), max_size=2),
    st.none() | st.just("t"),
    st.integers(0, 2),
    st.sampled_from(["h1", "h2"]),
)
_schemas = st.lists(_tables, max_size=3).map(lambda ts: Schema({t.name: t for t in ts}))


@settings(max_examples=200, deadline=None)
@given(_schemas, _schemas)
def test_compare_finds_a_difference_exactly_when_the_schemas_differ(a: Schema, b: Schema) -> None:
    found = compare(a, b)
    assert (found == ()) == (a == b)
    assert compare(a, a) == ()
    # Seen from the other side, each difference is the same one reversed.
    flip = {"added": "removed", "removed": "added", "changed": "changed"}
    assert sorted((d.kind, d.name, flip[d.change], d.new, d.old) for d in found) == sorted(
        (d.kind, d.name, d.change, d.old, d.new) for d in compare(b, a)
    )
    assert len({(d.kind, d.name) for d in found}) == len(found)
