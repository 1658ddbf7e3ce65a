"""branchmig graph: folding and the three renderers on synthetic graphs (hypothesis), the
markdown reports of plan and check, and the real CLI on the seed scenario."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from e2e_projects import (
    BASE,
    F1,
    F2,
    Project,
    make_seed_project,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from branchmig.graph import Graph, Revision
from branchmig.graphview import (
    FOLD_MARK,
    REVISION_MARK,
    GraphView,
    build_view,
    render_dot,
    render_mermaid,
    render_text,
)


def chain(n: int, *, prefix: str = "r", start: str | None = None) -> list[Revision]:
    revs, down = [], start
    for i in range(n):
        revs.append(Revision(f"{prefix}{i}", (down,) if down else ()))
        down = f"{prefix}{i}"
    return revs


@st.composite
def dags(draw: st.DrawFn) -> tuple[Graph, list[tuple[str, list[str]]], list[str] | None]:
    """Graphs with long linear stretches, branch points, merges and dependencies, plus
    marks: a few refs' heads and maybe a database position."""
    n = draw(st.integers(1, 40))
    revs: list[Revision] = []
    for i in range(n):
        if i == 0 or draw(st.integers(0, 9)) == 0:
            down: tuple[str, ...] = ()
        elif draw(st.integers(0, 9)) < 7:  # mostly the previous one: long runs
            down = (f"r{i - 1}",)
        else:
            down = tuple(
                sorted(
                    set(
                        draw(
                            st.lists(
                                st.sampled_from([f"r{j}" for j in range(i)]), min_size=1, max_size=3
                            )
                        )
                    )
                )
            )
        deps: tuple[str, ...] = ()
        if i > 1 and draw(st.integers(0, 14)) == 0:
            deps = (f"r{draw(st.integers(0, i - 1))}",)
        revs.append(Revision(f"r{i}", down, depends_on=deps))
    graph = Graph.build(revs)
    ids = list(graph.revisions)
    marks = [
        (f"ref{k}", draw(st.lists(st.sampled_from(ids), max_size=2)))
        for k in range(draw(st.integers(0, 2)))
    ]
    database = draw(st.none() | st.lists(st.sampled_from(ids + ["gone"]), max_size=2))
    return graph, marks, database


def edges_of(graph: Graph) -> set[tuple[str, str]]:
    return {(p, r) for r in graph.revisions for p in graph.parents_of(r) if p in graph}


def node_of(view: GraphView) -> dict[str, str]:
    return {r: n.key for n in view.nodes for r in n.revisions}


FOLDS = st.none() | st.integers(0, 5)


# -- folding --------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(), FOLDS)
def test_folding_keeps_the_graph_s_shape(
    case: tuple[Graph, list[tuple[str, list[str]]], list[str] | None], fold_after: int | None
) -> None:
    graph, marks, database = case
    view = build_view(graph, heads=marks, database=database, fold_after=fold_after)
    where = node_of(view)
    # Every revision is in exactly one node.
    assert sorted(where) == sorted(graph.revisions)
    assert sum(len(n.revisions) for n in view.nodes) == len(graph)
    # The edges are exactly the graph's, between the nodes holding their ends.
    assert {(e.parent, e.child) for e in view.edges} == {
        (where[p], where[c]) for p, c in edges_of(graph) if where[p] != where[c]
    }
    # Nodes come after the nodes they need.
    position = {n.key: i for i, n in enumerate(view.nodes)}
    assert all(position[e.parent] < position[e.child] for e in view.edges)

    marked = {r for _, heads in marks for r in heads} | set(database or ())
    children = {r: [c for p, c in edges_of(graph) if p == r] for r in graph.revisions}
    parents = {r: [p for p, c in edges_of(graph) if c == r] for r in graph.revisions}
    for node in view.nodes:
        if not node.folded:
            continue
        assert fold_after is not None and len(node.revisions) > fold_after
        for r in node.revisions:  # only plain revisions fold
            assert r not in marked and r not in graph.heads and r not in graph.bases
            assert len(children[r]) == 1 and len(parents[r]) == 1
            rev = graph.revisions[r]
            assert rev.down == tuple(parents[r]) and set(rev.depends_on) <= set(rev.down)
        # ... and they form one line, oldest first
        for older, newer in zip(node.revisions, node.revisions[1:], strict=False):
            assert graph.revisions[newer].down == (older,)
    if fold_after is None:
        assert not any(n.folded for n in view.nodes)
    # Marks land where they were asked for.
    for n in view.nodes:
        if not n.folded:
            (r,) = n.revisions
            assert n.refs == tuple(name for name, heads in marks if r in heads)
            assert n.database == (r in (database or ()))
    assert any("'gone'" in w for w in view.warnings) == ("gone" in (database or ()))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 60), st.integers(0, 6))
def test_no_foldable_run_is_left(length: int, fold_after: int) -> None:
    graph = Graph.build(chain(length))
    view = build_view(graph, fold_after=fold_after)
    inner = length - 2  # the base and the head are kept
    if inner > max(fold_after, 1):
        assert [n.label for n in view.nodes] == ["r0", f"… {inner:,} revisions …", f"r{length - 1}"]
    else:
        assert [n.label for n in view.nodes] == [f"r{i}" for i in range(length)]


def test_a_long_history_folds_around_every_kept_revision() -> None:
    """1,480 plain revisions, a branch point, two branches, a merge, a marked revision in
    the middle of a run."""
    revs = chain(1481)  # r0 .. r1480
    revs += chain(5, prefix="a", start="r1480") + chain(2, prefix="b", start="r1480")
    revs.append(Revision("m", ("a4", "b1")))
    revs += chain(10, prefix="t", start="m")
    view = build_view(Graph.build(revs), heads=[("main", ["t9"])], database=["t5"])
    assert [n.label for n in view.nodes] == [
        "r0",
        "… 1,479 revisions …",
        "r1480",
        "… 5 revisions …",
        "b0",
        "b1",
        "m",
        "… 5 revisions …",
        "t5",
        "t6",
        "t7",
        "t8",
        "t9",
    ]
    text = render_text(view)
    assert "… 1,479 revisions …" in text and "t9 (main)" in text and "t5 ◀ database" in text


def test_dependencies_are_dashed_and_never_folded_through() -> None:
    revs = chain(8) + [Revision("x", ("r0",), depends_on=("r4",))]
    view = build_view(Graph.build(revs), fold_after=2)
    assert [n.label for n in view.nodes] == ["r0", "… 3 revisions …", "r4", "r5", "r6", "r7", "x"]
    assert any(e.dependency and e.parent == "r4" and e.child == "x" for e in view.edges)
    assert "r4 -.-> " not in render_mermaid(view)  # ids are n<i>
    assert re.search(r"n\d+ -\.-> n\d+", render_mermaid(view))
    assert '"r4" -> "x" [style=dashed];' in render_dot(view)


# -- renderers ------------------------------------------------------------------------------

_UP = set("│┼┴┘┤")
_DOWN = set("│┼┬┐┤")
_GLYPHS = _UP | _DOWN | set(" ─" + REVISION_MARK + FOLD_MARK)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(), FOLDS)
def test_text_draws_each_node_once_with_unbroken_lanes(
    case: tuple[Graph, list[tuple[str, list[str]]], list[str] | None], fold_after: int | None
) -> None:
    graph, marks, database = case
    view = build_view(graph, heads=marks, database=database, fold_after=fold_after)
    lines = render_text(view).splitlines()
    if view.database == ():
        lines = lines[:-1]
    nodes = list(reversed(view.nodes))  # newest first
    assert len(lines) == len(nodes)
    has_child = {e.parent for e in view.edges}
    has_parent = {e.child for e in view.edges}
    previous_down: set[int] = set()
    for line, node in zip(lines, nodes, strict=True):
        cut = next(
            i for i in range(len(line)) if line[i : i + 2] == "  " and line[i + 2] not in _GLYPHS
        )
        drawing, label = line[:cut], line[cut + 2 :]
        assert (
            label.split(" ")[0] == node.label.split(" ")[0]
            if not node.folded
            else label.startswith(node.label)
        )
        marks_at = [i for i, ch in enumerate(drawing) if ch in (REVISION_MARK, FOLD_MARK)]
        assert len(marks_at) == 1 and marks_at[0] % 2 == 0
        col = marks_at[0]
        assert drawing[col] == (FOLD_MARK if node.folded else REVISION_MARK)
        up = {i for i, ch in enumerate(drawing) if ch in _UP}
        down = {i for i, ch in enumerate(drawing) if ch in _DOWN}
        if node.key in has_child:
            up.add(col)
        if node.key in has_parent:
            down.add(col)
        assert up == previous_down, (line, node)  # every lane arrives where one left
        # one lane arrives from each child and leaves for each parent
        children = sum(e.parent == node.key for e in view.edges)
        parents = sum(e.child == node.key for e in view.edges)
        assert sum(ch in "┘┴" for ch in drawing) == max(children - 1, 0)
        assert sum(ch in "┐┬" for ch in drawing) == max(parents - 1, 0)
        previous_down = down
    assert previous_down == set()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(), FOLDS)
def test_mermaid_and_dot_hold_every_node_edge_and_mark(
    case: tuple[Graph, list[tuple[str, list[str]]], list[str] | None], fold_after: int | None
) -> None:
    graph, marks, database = case
    view = build_view(graph, heads=marks, database=database, fold_after=fold_after)

    mermaid = render_mermaid(view).splitlines()
    assert mermaid[0] == "flowchart BT"
    declared = dict(re.findall(r'^    (n\d+)\(?\["(.*)"\]\)?$', "\n".join(mermaid), re.M))
    ids = {n.key: f"n{i}" for i, n in enumerate(view.nodes)}
    assert set(declared) == set(ids.values())
    for n in view.nodes:
        parts = declared[ids[n.key]].split("<br/>")
        assert parts[0] == n.label
        assert (f"({', '.join(n.refs)})" in parts) == bool(n.refs)
        assert ("◀ database" in parts) == n.database
    arrows = re.findall(r"^    (n\d+) (-->|-\.->) (n\d+)$", "\n".join(mermaid), re.M)
    assert sorted(arrows) == sorted(
        (ids[e.parent], "-.->" if e.dependency else "-->", ids[e.child]) for e in view.edges
    )

    dot = render_dot(view)
    assert dot.startswith("digraph revisions {") and dot.endswith("}")
    assert "rankdir=BT" in dot
    dot_nodes = re.findall(r'^    "([^"]*)" \[label="([^"]*)"', dot, re.M)
    assert sorted(k for k, _ in dot_nodes) == sorted(n.key for n in view.nodes)
    dot_edges = re.findall(r'^    "([^"]*)" -> "([^"]*)"', dot, re.M)
    assert sorted(dot_edges) == sorted((e.parent, e.child) for e in view.edges)


def test_labels_are_escaped() -> None:
    graph = Graph.build([Revision('a"<b>\\')])
    view = build_view(graph, heads=[('it\'s "x"', ['a"<b>\\'])])
    assert '["a#quot;#lt;b#gt;\\<br/>(it\'s #quot;x#quot;)"]' in render_mermaid(view)
    assert '"a\\"<b>\\\\" [label="a\\"<b>\\\\\\n(it\'s \\"x\\")"' in render_dot(view)


def test_text_colour_only_when_asked() -> None:
    view = build_view(Graph.build(chain(2)), heads=[("main", ["r1"])], database=["r1"])
    assert "\033[" not in render_text(view)
    coloured = render_text(view, color=True)
    assert "\033[1;32mmain\033[0m" in coloured and "\033[1;36m◀ database\033[0m" in coloured


def test_a_merge_draws_its_lanes() -> None:
    revs = [
        Revision("base"),
        Revision("a", ("base",)),
        Revision("b", ("base",)),
        Revision("m", ("a", "b")),
    ]
    view = build_view(Graph.build(revs), heads=[("main", ["m"])], database=[])
    assert render_text(view).splitlines() == [
        "●─┐  m (main)",
        "│ ●  b",
        "● │  a",
        "●─┘  base",
        "(the database has no revision applied: it is at base)",
    ]


# -- through the real CLI on the seed scenario ----------------------------------------------


@pytest.fixture
def seed_db_at_feature1(alembic_template: Path, tmp_path: Path) -> Project:
    """The seed project (main: BASE, feature1: F1, feature2: F2), the database switched
    to feature1, main checked out again by git alone (the database stays at F1)."""
    p = make_seed_project(alembic_template, tmp_path / "seed", kind="alembic")
    p.ok("switch", "feature1")
    p.git("checkout", "-q", "main")
    return p


def graph_of(p: Project, *args: str) -> str:
    proc = p.branchmig("graph", *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out: str = proc.stdout
    return out


def test_graph_cli_in_all_three_formats(seed_db_at_feature1: Project) -> None:
    p = seed_db_at_feature1
    refs = ("main", "feature1", "feature2")
    assert graph_of(p, *refs).splitlines() == [
        f"●  {F2} (feature2)",
        f"│ ●  {F1} (feature1) ◀ database",
        f"●─┘  {BASE} (main)",
    ]
    mermaid = graph_of(p, *refs, "--format", "mermaid")
    assert mermaid.splitlines()[:6] == [
        "flowchart BT",
        f'    n0["{BASE}<br/>(main)"]',
        f'    n1["{F1}<br/>(feature1)<br/>◀ database"]',
        f'    n2["{F2}<br/>(feature2)"]',
        "    n0 --> n1",
        "    n0 --> n2",
    ]
    assert "    class n1 database" in mermaid and "    class n0,n1,n2 head" in mermaid
    dot = graph_of(p, *refs, "--format", "dot")
    assert f'"{BASE}" -> "{F1}";' in dot and f'"{BASE}" -> "{F2}";' in dot
    assert re.search(rf'"{F1}" \[label="{F1}\\n\(feature1\)\\n◀ database"', dot)
    assert f'"{F2}" [label="{F2}\\n(feature2)"' in dot
    # The working tree by default; --no-db reads no database.
    proc = p.branchmig("graph")
    assert proc.stdout.splitlines() == [f"●  {BASE} (working tree)"]
    assert proc.stderr == (
        f"warning: The database is at '{F1}', which none of the graphs "
        "shown has; run: branchmig status\n"
    )
    assert graph_of(p, "--no-db", "feature1").splitlines() == [f"●  {F1} (feature1)", f"●  {BASE}"]


def test_graph_cli_warns_once_when_the_database_cannot_be_read(
    seed_db_at_feature1: Project,
) -> None:
    p = seed_db_at_feature1
    ini = p.root / "alembic.ini"
    ini.write_text(
        re.sub(
            r"(?m)^sqlalchemy\.url = .*$",
            "sqlalchemy.url = sqlite:////nonexistent/folder/app.db",
            ini.read_text(),
        )
    )
    proc = p.branchmig("graph", "feature1")
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == [f"●  {F1} (feature1)", f"●  {BASE}"]
    (line,) = proc.stderr.splitlines()
    assert line.startswith("warning: the database's position is not marked: Cannot read")
    assert line.endswith("To draw without reading it: branchmig graph --no-db")


def test_plan_and_check_markdown(seed_db_at_feature1: Project) -> None:
    p = seed_db_at_feature1
    proc = p.branchmig("plan", "feature1", "feature2", "--format", "markdown")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "### ⚠️ branchmig plan: `feature1` → `feature2`: 1 downgrade, 1 upgrade; "
        "1 downgrade loses data",
        "",
        f"Common revision: `{BASE}`.",
        "",
        "| # | step | revision | loses data |",
        "| -: | --- | --- | --- |",
        f"| 1 | downgrade | `{F1}` | ⚠️ `drop_column` users.email |",
        f"| 2 | upgrade | `{F2}` |  |",
    ]
    proc = p.branchmig("plan", "main", "main", "--format", "markdown")
    assert proc.stdout.splitlines()[0] == ("### ✅ branchmig plan: `main` → `main`: nothing to do")

    p.git("checkout", "-q", "feature2")
    proc = p.branchmig("check", "--against", "feature1", "--format", "markdown")
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[:3] == [
        "### ❌ branchmig check: merging `feature1` would leave 2 heads",
        "",
        f"Merging 'feature1' would leave 2 heads: '{F2}' "
        f"(alembic/versions/{F2}_posts.py), '{F1}' (alembic/versions/{F1}_email.py). "
        f"Before merging, set down_revision of your first new migration to '{F1}'",
    ]
    assert f"- Heads after merging `feature1`: `{F2}`, `{F1}`" in proc.stdout
    assert proc.stderr.startswith("branchmig: Merging 'feature1' would leave 2 heads")
    proc = p.branchmig("check", "--format", "markdown")
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == [
        "### ✅ branchmig check: 1 head: ok",
        "",
        f"- Heads in the working tree: `{F2}`",
        "- Heads expected: 1",
    ]


def test_markdown_lists_warnings() -> None:
    from branchmig.plan import Plan
    from branchmig.reports.analysis import plan_markdown

    text = plan_markdown(
        Plan(common=(), downgrade=(), upgrade=("a",)),
        source="WORKTREE",
        target="main",
        warnings=("on SQLite, x",),
    )
    assert text.splitlines() == [
        "### branchmig plan: the working tree → `main`: 0 downgrades, 1 upgrade",
        "",
        "Common revision: base (none).",
        "",
        "| # | step | revision | loses data |",
        "| -: | --- | --- | --- |",
        "| 1 | upgrade | `a` |  |",
        "",
        "**Warnings**",
        "",
        "- on SQLite, x",
    ]
