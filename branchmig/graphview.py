"""The revision graph drawn for people: long linear stretches folded into one node, each
ref's heads and the database's position marked, rendered as terminal text, Mermaid (a
pull-request comment) or Graphviz dot. Pure: a Graph in, strings out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from branchmig.graph import Graph

FOLD_AFTER = 3  # a run of more plain linear revisions than this is drawn as one node
DATABASE = "database"


@dataclass(frozen=True)
class Node:
    """One revision, or a folded run of plain linear ones (oldest first)."""

    key: str
    revisions: tuple[str, ...]
    refs: tuple[str, ...] = ()  # the refs whose head this revision is
    database: bool = False  # the database is at this revision

    @property
    def folded(self) -> bool:
        return len(self.revisions) > 1

    @property
    def label(self) -> str:
        if self.folded:
            return f"… {len(self.revisions):,} revisions …"
        return self.revisions[0]

    @property
    def marks(self) -> tuple[str, ...]:
        return self.refs + ((DATABASE,) if self.database else ())


@dataclass(frozen=True)
class Edge:
    parent: str  # node keys
    child: str
    dependency: bool = False  # a depends_on rather than a down_revision


@dataclass(frozen=True)
class GraphView:
    nodes: tuple[Node, ...]  # every node after the nodes it needs
    edges: tuple[Edge, ...]
    database: tuple[str, ...] | None = None  # the database's heads; None: not read
    warnings: tuple[str, ...] = field(default=())


def build_view(
    graph: Graph,
    *,
    heads: Sequence[tuple[str, Sequence[str]]] = (),
    database: Sequence[str] | None = None,
    fold_after: int | None = FOLD_AFTER,
) -> GraphView:
    """The drawable graph: ``heads`` marks each named ref's heads, ``database`` the
    database's heads (None: unknown, no mark). Runs of more than ``fold_after`` plain
    revisions (one parent, one child, no mark) become one node; heads, bases, branch
    points, merge points and marked revisions are always kept. ``None``: fold nothing.
    A cycle is a GraphError (from ``Graph.topological``)."""
    order = graph.topological(graph.revisions)
    edges = _revision_edges(graph)
    refs_at: dict[str, list[str]] = {}
    for name, ref_heads in heads:
        for head in ref_heads:
            if head in graph and name not in refs_at.setdefault(head, []):
                refs_at[head].append(name)
    db = tuple(dict.fromkeys(database)) if database is not None else None
    at_db = set(db or ())
    marked = set(refs_at) | at_db

    node_of = {r: r for r in order}
    folds: dict[str, tuple[str, ...]] = {}
    if fold_after is not None:
        for run in _plain_runs(graph, order, edges, marked):
            if len(run) > max(fold_after, 1):  # one revision is drawn as itself
                key = f"fold:{run[0]}..{run[-1]}"
                folds[key] = run
                node_of.update(dict.fromkeys(run, key))

    nodes: list[Node] = []
    for r in order:
        key = node_of[r]
        if key in folds:
            if r == folds[key][0]:
                nodes.append(Node(key, folds[key]))
            continue
        nodes.append(Node(r, (r,), tuple(refs_at.get(r, ())), r in at_db))
    view_edges = dict.fromkeys(
        Edge(node_of[p], node_of[c], dep) for p, c, dep in edges if node_of[p] != node_of[c]
    )
    # A dependency drawn twice (also a down_revision between the same nodes) is noise.
    down_pairs = {(e.parent, e.child) for e in view_edges if not e.dependency}
    kept = tuple(e for e in view_edges if not (e.dependency and (e.parent, e.child) in down_pairs))
    warnings = [p.message for p in graph.problems]
    warnings += [
        f"The database is at '{h}', which none of the graphs shown has; run: branchmig status"
        for h in (db or ())
        if h not in graph
    ]
    return GraphView(tuple(nodes), kept, db, tuple(warnings))


def _revision_edges(graph: Graph) -> list[tuple[str, str, bool]]:
    """(parent, child, is a dependency) for every parent in the graph, down revisions
    first."""
    found: dict[tuple[str, str], bool] = {}
    for rev in graph.revisions.values():
        for i, parent in enumerate(graph.parents_of(rev.id)):
            if parent in graph and (parent, rev.id) not in found:
                found[parent, rev.id] = i >= len(rev.down)
    return [(p, c, dep) for (p, c), dep in found.items()]


def _plain_runs(
    graph: Graph, order: Sequence[str], edges: Iterable[tuple[str, str, bool]], marked: set[str]
) -> list[tuple[str, ...]]:
    """Maximal chains of plain revisions, oldest first: each has exactly one parent and
    one child, both through a down_revision, is no head and carries no mark."""
    ups: dict[str, list[tuple[str, bool]]] = {r: [] for r in order}
    downs: dict[str, list[tuple[str, bool]]] = {r: [] for r in order}
    for parent, child, dep in edges:
        ups[child].append((parent, dep))
        downs[parent].append((child, dep))
    heads = set(graph.heads)

    def plain(r: str) -> bool:
        return (
            r not in marked
            and r not in heads
            and len(ups[r]) == 1
            and not ups[r][0][1]
            and len(downs[r]) == 1
            and not downs[r][0][1]
        )

    runs = []
    for r in order:
        if not plain(r) or plain(ups[r][0][0]):
            continue  # not a plain run's oldest revision
        run = [r]
        while plain(downs[run[-1]][0][0]):
            run.append(downs[run[-1]][0][0])
        runs.append(tuple(run))
    return runs


# -- text -----------------------------------------------------------------------------------

_BOX = {  # (left, right, up, down) -> the glyph joining those sides
    (True, True, True, True): "┼",
    (True, True, True, False): "┴",
    (True, True, False, True): "┬",
    (True, True, False, False): "─",
    (True, False, True, False): "┘",
    (True, False, False, True): "┐",
    (True, False, True, True): "┤",
    (True, False, False, False): "─",
}
REVISION_MARK = "●"
FOLD_MARK = "┊"

_STYLE = {"id": "33", "ref": "1;32", "database": "1;36", "fold": "2"}


def _paint(text: str, style: str, color: bool) -> str:
    return f"\033[{_STYLE[style]}m{text}\033[0m" if color else text


def render_text(view: GraphView, *, color: bool = False) -> str:
    """Newest first, one line per node, lanes drawn with box characters as ``git log
    --graph`` does; ``color`` adds ANSI colours."""
    parents: dict[str, list[str]] = {n.key: [] for n in view.nodes}
    for e in view.edges:
        parents[e.child].append(e.parent)
    lanes: list[str | None] = []  # each lane waits for the node it leads to
    lines = []
    for node in reversed(view.nodes):
        before = list(lanes)
        here = [i for i, k in enumerate(lanes) if k == node.key]
        if here:
            col = here[0]
        else:
            col = lanes.index(None) if None in lanes else len(lanes)
            lanes += [None] * (col + 1 - len(lanes))
        joins = set(here[1:])
        for i in here:
            lanes[i] = None
        forks: set[int] = set()
        for n, parent in enumerate(parents[node.key]):
            if n == 0:
                lanes[col] = parent
                continue
            slot = next(
                (i for i in range(col + 1, len(lanes)) if lanes[i] is None and i not in joins),
                len(lanes),
            )
            if slot == len(lanes):
                lanes.append(None)
            lanes[slot] = parent
            forks.add(slot)
        reach = max(joins | forks, default=col)
        cells = []
        for i in range(max(len(before), len(lanes))):
            passing = i < len(before) and before[i] is not None and before[i] != node.key
            if i == col:
                glyph = FOLD_MARK if node.folded else REVISION_MARK
            elif col < i <= reach:
                glyph = _BOX[True, i < reach, i in joins or passing, i in forks or passing]
            else:
                glyph = "│" if passing else " "
            cells.append(glyph + ("─" if col <= i < reach else " "))
        while lanes and lanes[-1] is None:
            lanes.pop()
        lines.append(f"{''.join(cells).rstrip()}  {_describe(node, color)}")
    if view.database == ():
        lines.append(
            _paint("(the database has no revision applied: it is at base)", "database", color)
        )
    return "\n".join(lines)


def _describe(node: Node, color: bool) -> str:
    text = _paint(node.label, "fold" if node.folded else "id", color)
    if node.refs:
        text += " (" + ", ".join(_paint(r, "ref", color) for r in node.refs) + ")"
    if node.database:
        text += " " + _paint(f"◀ {DATABASE}", "database", color)
    return text


# -- Mermaid --------------------------------------------------------------------------------


def _mermaid_text(text: str) -> str:
    return (
        text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    )


def render_mermaid(view: GraphView) -> str:
    """A ``flowchart BT`` (bases at the bottom) for a Markdown code block: GitHub and
    GitLab draw it in a pull-request comment."""
    ids = {n.key: f"n{i}" for i, n in enumerate(view.nodes)}
    lines = ["flowchart BT"]
    classes: dict[str, list[str]] = {"head": [], "database": [], "fold": []}
    for n in view.nodes:
        text = "<br/>".join(
            [_mermaid_text(n.label)]
            + ([_mermaid_text(f"({', '.join(n.refs)})")] if n.refs else [])
            + ([_mermaid_text(f"◀ {DATABASE}")] if n.database else [])
        )
        lines.append(f'    {ids[n.key]}(["{text}"])' if n.folded else f'    {ids[n.key]}["{text}"]')
        for name, wanted in (("head", bool(n.refs)), ("database", n.database), ("fold", n.folded)):
            if wanted:
                classes[name].append(ids[n.key])
    for e in view.edges:
        lines.append(f"    {ids[e.parent]} {'-.->' if e.dependency else '-->'} {ids[e.child]}")
    lines += [
        "    classDef head fill:#dafbe1,stroke:#1a7f37",
        "    classDef database stroke:#0969da,stroke-width:3px",
        "    classDef fold fill:#f6f8fa,stroke:#8c959f,stroke-dasharray:4 3,color:#57606a",
    ]
    lines += [
        f"    class {','.join(members)} {name}" for name, members in classes.items() if members
    ]
    return "\n".join(lines)


# -- Graphviz dot ---------------------------------------------------------------------------


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(view: GraphView) -> str:
    """A Graphviz digraph, bases at the bottom: ``branchmig graph --format dot | dot
    -Tsvg > graph.svg``."""
    lines = [
        "digraph revisions {",
        "    rankdir=BT;",
        '    node [shape=box, style=rounded, fontname="monospace"];',
    ]
    for n in view.nodes:
        text = "\n".join(
            [n.label]
            + ([f"({', '.join(n.refs)})"] if n.refs else [])
            + ([f"◀ {DATABASE}"] if n.database else [])
        )
        attrs = [f"label={_dot_string(text)}"]
        if n.folded:
            attrs += ['style="rounded,dashed"', 'fontcolor="#57606a"']
        elif n.refs:
            attrs += ['style="rounded,filled"', 'fillcolor="#dafbe1"']
        if n.database:
            attrs += ["penwidth=3", 'color="#0969da"']
        lines.append(f"    {_dot_string(n.key)} [{', '.join(attrs)}];")
    for e in view.edges:
        style = " [style=dashed]" if e.dependency else ""
        lines.append(f"    {_dot_string(e.parent)} -> {_dot_string(e.child)}{style};")
    lines.append("}")
    return "\n".join(lines)


FORMATS = ("text", "mermaid", "dot")


def render(view: GraphView, fmt: str, *, color: bool = False) -> str:
    """``view`` in one of ``FORMATS``; ``color`` applies to text only."""
    if fmt == "mermaid":
        return render_mermaid(view)
    if fmt == "dot":
        return render_dot(view)
    return render_text(view, color=color)
