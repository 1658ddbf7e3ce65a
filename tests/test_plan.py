"""Plans: what to revert and apply to move a database from one graph to another. Pure."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_graph import dags, rev

from branchmig.downgrades import Destructive, find_destructive
from branchmig.errors import CycleError, GraphError, PlanError
from branchmig.graph import Graph, Revision
from branchmig.plan import make_plan


def graph(*revisions: Revision) -> Graph:
    return Graph.build(revisions)


def edited(r: Revision, *, down: tuple[str, ...] | None = None) -> Revision:
    return Revision(
        r.id,
        r.down if down is None else down,
        r.labels,
        r.depends_on,
        r.path,
        blob=r.blob + "-edited",
    )


A, B, C = rev("a"), rev("b", "a"), rev("c", "b")
F1A, F1B, F2A = rev("f1a", "c"), rev("f1b", "f1a"), rev("f2a", "c")
MAIN = graph(A, B, C)
FEATURE1 = graph(A, B, C, F1A, F1B)
FEATURE2 = graph(A, B, C, F2A)


def test_linear_upgrade_only() -> None:
    plan = make_plan(applied_heads=["a"], source=MAIN, target=FEATURE1)
    assert (plan.common, plan.downgrade, plan.upgrade) == (("a",), (), ("b", "c", "f1a", "f1b"))


def test_same_graph_is_a_noop() -> None:
    plan = make_plan(applied_heads=["c"], source=MAIN, target=MAIN)
    assert plan.is_noop and plan.common == ("c",)


def test_between_feature_branches() -> None:
    plan = make_plan(applied_heads=["f1b"], source=FEATURE1, target=FEATURE2)
    assert plan.common == ("c",)
    assert plan.downgrade == ("f1b", "f1a")
    assert plan.upgrade == ("f2a",)
    assert plan.changed == ()


def test_from_nothing_applied() -> None:
    plan = make_plan(applied_heads=[], source=MAIN, target=MAIN)
    assert (plan.common, plan.downgrade, plan.upgrade) == ((), (), ("a", "b", "c"))


def test_merge_revision_and_its_branches() -> None:
    merged = graph(A, B, C, F1A, F1B, F2A, rev("m", "f1b", "f2a"))
    plan = make_plan(applied_heads=["m"], source=merged, target=MAIN)
    assert plan.common == ("c",)
    assert plan.downgrade[0] == "m"
    assert set(plan.downgrade) == {"m", "f1b", "f1a", "f2a"}
    assert plan.downgrade.index("f1b") < plan.downgrade.index("f1a")
    back = make_plan(applied_heads=["f1b", "f2a"], source=merged, target=merged)
    assert back.upgrade == ("m",) and back.common == ("f1b", "f2a")


def test_database_with_two_heads_moves_to_one_branch() -> None:
    both = graph(A, B, C, F1A, F1B, F2A)
    plan = make_plan(applied_heads=["f1b", "f2a"], source=both, target=FEATURE2)
    assert plan.downgrade == ("f1b", "f1a")
    assert plan.upgrade == ()
    assert plan.common == ("f2a",)


def test_edited_script_is_redone_with_everything_above_it() -> None:
    target = graph(A, edited(B), C)
    plan = make_plan(applied_heads=["c"], source=MAIN, target=target)
    assert plan.common == ("a",)
    assert plan.downgrade == ("c", "b")
    assert plan.upgrade == ("b", "c")
    assert plan.changed == ("b",)


def test_rebased_script_is_redone() -> None:
    # feature2's f2a was applied on c; then rebased onto feature1's f1b.
    rebased = graph(A, B, C, F1A, F1B, edited(F2A, down=("f1b",)))
    plan = make_plan(applied_heads=["f2a"], source=FEATURE2, target=rebased)
    assert plan.common == ("c",)
    assert plan.downgrade == ("f2a",)
    assert plan.upgrade == ("f1a", "f1b", "f2a")
    assert plan.changed == ("f2a",)


def test_target_heads_subset_reverts_what_they_do_not_need() -> None:
    both = graph(A, B, C, F1A, F1B, F2A)
    plan = make_plan(applied_heads=["f1b", "f2a"], source=both, target=both, target_heads=["f2a"])
    assert plan.downgrade == ("f1b", "f1a")
    assert plan.upgrade == ()


def test_unknown_applied_head() -> None:
    with pytest.raises(PlanError) as err:
        make_plan(applied_heads=["f1b"], source=MAIN, target=MAIN)
    assert str(err.value) == (
        "The database is at 'f1b', which no known script defines; "
        "run 'branchmig status' to see where it was last seen"
    )


def test_broken_part_of_a_graph_blocks_only_plans_that_touch_it() -> None:
    broken = graph(A, B, C, rev("x", "gone"))
    plan = make_plan(applied_heads=["a"], source=broken, target=MAIN)
    assert plan.upgrade == ("b", "c")
    with pytest.raises(GraphError, match="'gone'"):
        make_plan(applied_heads=["a"], source=MAIN, target=broken)


# -- properties -----------------------------------------------------------------------------


@st.composite
def moves(draw: st.DrawFn) -> tuple[Graph, list[str], Graph, list[str]]:
    """A source graph, heads applied from it, a target graph (some revisions edited or
    dropped, some added) and target heads."""
    revisions = draw(dags(max_size=12))
    source = Graph.build(revisions)
    applied = draw(st.lists(st.sampled_from(sorted(source.revisions)), max_size=3, unique=True))
    target_revs = []
    needed = {p for r in revisions for p in source.parents_of(r.id)}
    leaves = sorted(set(source.revisions) - needed)
    drop = set(draw(st.lists(st.sampled_from(leaves), max_size=2))) if leaves else set()
    for r in revisions:
        if r.id in drop:
            continue
        if draw(st.integers(0, 5)) == 0:
            r = Revision(r.id, r.down, r.labels, r.depends_on, r.path, r.blob + "-new")
        target_revs.append(r)
    extra = draw(st.integers(0, 3))
    for i in range(extra):
        parents = [r.id for r in target_revs]
        down = (
            tuple(draw(st.lists(st.sampled_from(parents), max_size=2, unique=True)))
            if parents
            else ()
        )
        target_revs.append(rev(f"new{i}", *down))
    target = Graph.build(target_revs)
    heads = None
    if target.heads and draw(st.booleans()):
        heads = draw(st.lists(st.sampled_from(sorted(target.heads)), min_size=1, unique=True))
    return source, applied, target, heads


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves())
def test_plan_orders_are_valid_and_reach_the_target(
    move: tuple[Graph, list[str], Graph, list[str] | None],
) -> None:
    source, applied_heads, target, target_heads = move
    plan = make_plan(
        applied_heads=applied_heads, source=source, target=target, target_heads=target_heads
    )
    applied = set(source.ancestors(applied_heads))
    # Downgrade: each reverted revision before everything it needs among the reverted.
    for i, r in enumerate(plan.downgrade):
        assert r in applied
        needs = source.ancestors([r]) - {r}
        assert not needs & set(plan.downgrade[:i]), (r, plan.downgrade)
        applied.discard(r)
    # What is left is closed under "needs" and identical in both graphs.
    for r in applied:
        assert source.ancestors([r]) <= applied
        assert target.revisions[r].blob == source.revisions[r].blob
    # Upgrade: topological in the target.
    for r in plan.upgrade:
        assert r not in applied
        assert set(target.parents_of(r)) <= applied, (r, plan.upgrade)
        applied.add(r)
    heads = target.heads if target_heads is None else target_heads
    assert applied == target.ancestors(heads)
    assert set(plan.common) <= applied
    assert set(plan.changed) == {
        r
        for r in plan.downgrade
        if r in plan.upgrade and source.revisions[r].blob != target.revisions[r].blob
    }


# -- destructive operations in downgrade() --------------------------------------------------

DOWNGRADES = '''
import sqlalchemy as sa
from alembic import op


def upgrade():
    op.drop_table("not_in_downgrade")


def downgrade():
    op.drop_table("orders")
    op.drop_column("users", "email")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("nickname")
        batch_op.add_column(sa.Column("x", sa.Integer()))
    op.execute("DROP TABLE legacy")
    op.execute(sa.text("DELETE FROM audit WHERE 1=1"))
    op.execute("""
        ALTER TABLE people DROP COLUMN age
    """)
    op.execute("UPDATE t SET a = 1")
    op.drop_index("ix_users_email")
    op.add_column("users", sa.Column("y", sa.Integer()))
'''


def test_destructive_operations_are_found_in_downgrade_only() -> None:
    found = find_destructive(DOWNGRADES.encode(), "r1")
    assert [(d.operation, d.target) for d in found] == [
        ("drop_table", "orders"),
        ("drop_column", "users.email"),
        ("drop_column", "accounts.nickname"),
        ("execute", "DROP TABLE legacy"),
        ("execute", "DELETE FROM audit WHERE 1=1"),
        ("execute", "ALTER TABLE people DROP COLUMN age"),
        ("execute", "UPDATE t SET a = 1"),
    ]
    assert found[0] == Destructive("r1", "drop_table", "orders", 11)
    assert found[0].describe() == "r1: downgrade drop_table orders"


UPGRADES = """
import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

settings = sa.table("settings", sa.column("mode"))


def upgrade():
    op.drop_column("transaction", "remote_addr")
    op.execute("UPDATE users SET logging_preference = 'none' WHERE logging_preference = 'off'")
    op.alter_column("users", "name", existing_type=sa.String(50), nullable=False)
    op.alter_column("users", "bio", existing_type=sa.String(50), comment="harmless")
    op.alter_column("users", "age", type_=sa.Integer(), existing_nullable=True)
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.alter_column("kind", type_=sa.String(10))
    conn = op.get_bind()
    conn.execute(sa.text("TRUNCATE audit"))
    op.get_bind().execute(sa.text(f"DELETE FROM {TABLE} WHERE id > 3"))
    query = "SELECT id FROM users"
    conn.execute(sa.text(query))
    conn.execute(sa.text(SQL_FROM_ELSEWHERE))
    op.execute(settings.update().values(mode="x"))
    op.execute(sa.insert(settings).values(mode="y"))
    options = {}
    options.update(a=1)
    _migrate_rows(conn)


def _migrate_rows(conn):
    session = Session(bind=conn)
    session.query(User).filter(User.id > 1).delete()


def downgrade():
    op.drop_table("not_in_upgrade")
"""


def test_destructive_operations_are_found_in_upgrade_too() -> None:
    found = find_destructive(UPGRADES.encode(), "f2", "upgrade")
    assert {d.direction for d in found} == {"upgrade"}
    assert [(d.operation, d.target.split(" (")[0]) for d in found] == [
        ("drop_column", "transaction.remote_addr"),
        ("execute", "UPDATE users SET logging_preference = 'none' WHERE logging_p"),
        ("alter_column", "users.name"),
        ("alter_column", "users.age"),
        ("alter_column", "accounts.kind"),
        ("execute", "TRUNCATE audit"),
        ("execute", "DELETE FROM ? WHERE id > 3"),
        ("unknown", "SQL that is not a literal"),
        ("update", "settings.update()"),
        ("unknown", "an ORM session: rows may be rewritten; assume it loses data"),
        ("delete", "session.query(User).filter(User.id > 1).delete"),
    ]
    assert found[0].describe() == "f2: upgrade drop_column transaction.remote_addr"
    assert [d.operation for d in find_destructive(UPGRADES.encode(), "f2")] == ["drop_table"]


def test_a_multidb_upgrade_is_read_in_each_database_function() -> None:
    text = (
        b"def upgrade(engine_name):\n    globals()['upgrade_%s' % engine_name]()\n"
        b"def upgrade_():\n    op.drop_column('users', 'email')\n"
        b"def upgrade_users():\n    op.execute('DELETE FROM sessions')\n"
        b"def downgrade_users():\n    op.drop_table('kept')\n"
    )
    found = find_destructive(text, "m", "upgrade")
    assert [(d.operation, d.target) for d in found] == [
        ("drop_column", "users.email"),
        ("execute", "DELETE FROM sessions"),
    ]


def test_sql_whose_text_is_only_partly_known() -> None:
    def ops(body: str) -> list[str]:
        text = f"def upgrade():\n    {body}\n".encode()
        return [d.operation for d in find_destructive(text, "r", "upgrade")]

    assert ops('op.execute(f"INSERT INTO {t} VALUES (1)")') == []
    assert ops('op.execute(f"ALTER TABLE {t} ADD COLUMN x int")') == ["unknown"]
    assert ops('op.execute("UPDATE " + table + " SET x = 1")') == ["execute"]
    assert ops('op.execute("DROP TABLE %s" % name)') == ["execute"]
    assert ops('op.execute("DELETE FROM {}".format(name))') == ["execute"]
    assert ops("op.execute(build_sql())") == ["unknown"]
    assert ops("op.execute(\"ALTER TYPE mood RENAME VALUE 'a' TO 'b'\")") == ["execute"]
    assert ops("op.execute(sa.delete(table))") == ["delete"]
    assert ops("op.bulk_insert(table, rows)") == []


def test_keyword_arguments_and_a_script_that_does_not_parse() -> None:
    text = b"def downgrade():\n    op.drop_column(table_name='t', column_name='c')\n"
    assert [d.target for d in find_destructive(text, "r")] == ["t.c"]
    [unknown] = find_destructive(b"def downgrade():\n    print 'py2'\n", "r")
    assert unknown.operation == "unknown"
    [unknown] = find_destructive(b"def upgrade():\n    print 'py2'\n", "r", "upgrade")
    assert (unknown.operation, unknown.direction) == ("unknown", "upgrade")


def test_a_harmless_downgrade() -> None:
    text = b"def downgrade():\n    op.create_table('t')\n    op.add_column('t', c)\n"
    assert find_destructive(text, "r") == []


def test_a_cycle_off_the_path_in_the_target_refuses_the_plan() -> None:
    """Alembic loads no history with a cycle, even one no head reaches."""
    looped = graph(A, B, C, rev("x", "y"), rev("y", "x"), F1A)
    with pytest.raises(CycleError) as err:
        make_plan(applied_heads=["c"], source=MAIN, target=looped)
    assert set(err.value.cycle) == {"x", "y"}
    assert err.value.facts()["paths"] == [f"versions/{r}.py" for r in err.value.cycle]
    assert str(err.value).endswith("then run: branchmig check")


def test_a_cycle_off_the_path_in_the_source_is_left_behind() -> None:
    """Leaving a graph with a cycle that the database never went through: the way out."""
    looped = graph(A, B, C, rev("x", "y"), rev("y", "x"), F1A)
    plan = make_plan(applied_heads=["f1a"], source=looped, target=FEATURE2)
    assert (plan.downgrade, plan.upgrade) == (("f1a",), ("f2a",))
