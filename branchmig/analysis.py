"""The analyzer's commands, one typed function each: ``plan`` and ``check`` (``heads``
has a module of its own, light for a shell prompt). They take a Workspace, return
dataclasses, print nothing."""

from __future__ import annotations

from dataclasses import dataclass, replace

from branchmig.destructive import batch_warnings, scripted_columns, with_destructive
from branchmig.downgrades import batch_hint, find_unbatched, sqlite_refuses
from branchmig.graph import Graph, merge_graphs
from branchmig.plan import Plan, make_plan
from branchmig.scripts import read_text_anywhere
from branchmig.state import State
from branchmig.workspace import WORKTREE, Workspace, describe_ref


@dataclass(frozen=True)
class PlanResult:
    source: str
    target: str
    plan: Plan
    warnings: tuple[str, ...]


def plan_between(ws: Workspace, *, source: str, target: str) -> PlanResult:
    """What moving a database at ``source``'s heads to ``target``'s heads does."""
    src_scripts, src = ws.graph_at(source)
    dst_scripts, dst = ws.graph_at(target)
    plan = make_plan(applied_heads=src.heads, source=src, target=dst)
    plan = with_destructive(ws, plan, src, dst)
    return PlanResult(
        source=source or "WORKTREE",
        target=target or "WORKTREE",
        plan=plan,
        warnings=src_scripts.warnings
        + dst_scripts.warnings
        + (batch_warnings(plan, src) if configured_on_sqlite(ws) else ()),
    )


def configured_on_sqlite(ws: Workspace) -> bool:
    """Whether the project's database is SQLite, as far as can be told without running
    env.py: the database env.py last gave (branchmig remembers only SQLite ones), else
    the ``sqlalchemy.url`` of alembic.ini. Unknown (a Flask app's config, a URL env.py
    builds from the environment) is not SQLite: then nothing is warned about."""
    import configparser

    repo = ws.repo
    worktree = "" if repo.git_dir.resolve() == repo.common_dir.resolve() else repo.git_dir.name
    memo = State(ws.state_dir).remembered(worktree)
    if isinstance(memo, dict) and str(memo.get("url", "")).startswith("sqlite"):
        return True
    if ws.project.kind != "alembic" or not ws.project.config_path.is_file():
        return False
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(ws.project.config_path, encoding="utf-8")
        url = parser.get(ws.project.settings.ini_section, "sqlalchemy.url", fallback="")
    except (configparser.Error, UnicodeDecodeError):
        return False
    return url.strip().startswith("sqlite")


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    heads: tuple[str, ...]
    against: str | None
    merged_heads: tuple[str, ...]
    expected_heads: int
    message: str
    # Downgrades the working tree adds (against REF) that SQLite may refuse: warnings only.
    warnings: tuple[str, ...] = ()


def check(ws: Workspace, *, against: str | None = None) -> CheckResult:
    """Whether the working tree (and, with ``against``, the merge of REF into it) keeps
    no more heads than the project expects; with ``against``, the downgrades the tree
    adds that SQLite may refuse are warned about."""
    result = _check(ws, against=against)
    if against is None or not configured_on_sqlite(ws):
        return result
    import sqlite3

    _, ours = ws.graph_at(WORKTREE)
    _, theirs = ws.graph_at(against)
    version = tuple(int(n) for n in sqlite3.sqlite_version.split("."))
    warnings = []
    texts: dict[str, bytes] = {}  # by blob: the history is read once, if a drop needs it
    for rev in ours.revisions.values():
        if rev.id in theirs.revisions and theirs.revisions[rev.id].blob == rev.blob:
            continue
        text = read_text_anywhere(ws.repo, rev)
        found = find_unbatched(text, rev.id) if text is not None else []
        drops = any(d.operation == "drop_column" for d in found)
        facts = scripted_columns(ws, ours, [rev.id], texts=texts) if drops else {}
        refused = sqlite_refuses(found, facts, sqlite_version=version)
        if refused:
            warnings.append(f"on SQLite, {batch_hint(refused, rev.path)}")
    return replace(result, warnings=tuple(warnings))


def _check(ws: Workspace, *, against: str | None) -> CheckResult:
    expected = ws.project.settings.expected_heads
    _, ours = ws.graph_at(WORKTREE)
    # A migration rebased onto REF's head (what the hint below asks for) names a parent
    # only REF has: with ``against``, parents are looked for in the merge.
    rebased_onto_theirs = (
        against is not None
        and bool(ours.problems)
        and all(p.kind == "missing" for p in ours.problems)
    )
    if not rebased_onto_theirs:
        ours.check()
    merged_heads: tuple[str, ...] = ()
    if len(ours.heads) > expected and not rebased_onto_theirs:
        return CheckResult(
            False,
            ours.heads,
            against,
            (),
            expected,
            too_many_heads(ours, WORKTREE),
        )
    if against is not None:
        _, theirs = ws.graph_at(against)
        theirs.check()  # a broken REF fails the gate as `heads REF` fails: merging hides it
        merged = merge_graphs(ours, theirs)
        merged.check()
        merged_heads = merged.heads
        if len(merged_heads) > expected:
            new = [h for h in merged_heads if h not in theirs]
            hint = (
                f"set down_revision of your first new migration to "
                f"{', '.join(repr(h) for h in theirs.heads)}"
                if len(theirs.heads) == 1 and new
                else "run branchmig merge-heads after it"
            )
            return CheckResult(
                False,
                ours.heads,
                against,
                merged_heads,
                expected,
                (
                    f"Merging {describe_ref(against)} would leave {len(merged_heads)} heads: "
                    f"{_list_heads(merged, merged_heads)}. Before merging, {hint}"
                ),
            )
    if rebased_onto_theirs:
        return CheckResult(
            True,
            ours.heads,
            against,
            merged_heads,
            expected,
            (
                f"your migrations build on '{against}'; merging it keeps "
                f"{len(merged_heads)} head{'s' if len(merged_heads) != 1 else ''}: ok"
            ),
        )
    what = f"; merging '{against}' keeps {len(merged_heads)}" if against else ""
    return CheckResult(
        True,
        ours.heads,
        against,
        merged_heads,
        expected,
        f"{len(ours.heads)} head{'s' if len(ours.heads) != 1 else ''}{what}: ok",
    )


def too_many_heads(graph: Graph, ref: str) -> str:
    """``check``'s message for a graph with more heads than the project expects."""
    return (
        f"{len(graph.heads)} heads in {describe_ref(ref)}: {_list_heads(graph, graph.heads)}. "
        "Run: branchmig merge-heads (or branchmig merge-heads --rebase)"
    )


def _list_heads(graph: Graph, rev_ids: tuple[str, ...]) -> str:
    return ", ".join(f"'{r}' ({graph.revisions[r].path})" for r in rev_ids)
