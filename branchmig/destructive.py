"""What a plan destroys, read from the scripts' texts at their refs: the operations that
lose data in each direction and the downgrades SQLite cannot do in place. Shared by the
analyzer (``plan``, ``check``) and the move, which warns before it runs anything."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from branchmig.downgrades import (
    Destructive,
    batch_hint,
    constrained_columns,
    find_destructive,
    find_unbatched,
    sqlite_refuses,
)
from branchmig.errors import GitError
from branchmig.graph import Graph, Revision
from branchmig.plan import Plan
from branchmig.scripts import read_text_anywhere
from branchmig.workspace import Workspace

ColumnFacts = Callable[[], Mapping[str, Sequence[str]]]


def with_destructive(
    ws: Workspace,
    plan: Plan,
    source: Graph,
    target: Graph,
    *,
    texts: Mapping[str, bytes] | None = None,
    columns: ColumnFacts | None = None,
) -> Plan:
    """``plan`` with the operations that lose data in both directions: the downgrades
    it runs (their texts from ``texts``, by revision, when the caller has them, else
    from ``source``) and the upgrades (from ``target``, in one batch); and the downgrades
    SQLite cannot do in place. Which columns are indexed or constrained comes from
    ``columns`` (the live database's own word), else from the upgrades of the scripts
    before them."""
    found: list[Destructive] = []
    unbatched: list[Destructive] = []
    for rev_id in plan.downgrade:
        if texts is not None and rev_id in texts:
            text: bytes | None = texts[rev_id]
        else:
            text = read_text_anywhere(ws.repo, source.revisions[rev_id])
        if text is None:
            found.append(Destructive(rev_id, "unknown", "script text not found"))
        else:
            found.extend(find_destructive(text, rev_id))
            unbatched.extend(find_unbatched(text, rev_id))
    refused: list[Destructive] = []
    if unbatched:
        import sqlite3  # its library loads only when a downgrade may need it

        drops = [d.revision for d in unbatched if d.operation == "drop_column"]
        facts = (
            {}
            if not drops
            else columns()
            if columns is not None
            else scripted_columns(ws, source, drops)
        )
        version = tuple(int(n) for n in sqlite3.sqlite_version.split("."))
        refused.extend(sqlite_refuses(unbatched, facts, sqlite_version=version))
    upgrade_texts = _texts_of(ws, [target.revisions[r] for r in plan.upgrade])
    for rev_id in plan.upgrade:
        text = upgrade_texts.get(target.revisions[rev_id].blob)
        if text is None:
            found.append(Destructive(rev_id, "unknown", "script text not found", 0, "upgrade"))
        else:
            found.extend(find_destructive(text, rev_id, "upgrade"))
    return replace(plan, destructive=tuple(found), batch_needed=tuple(refused))


def scripted_columns(
    ws: Workspace, graph: Graph, revisions: Sequence[str], *, texts: dict[str, bytes] | None = None
) -> dict[str, list[str]]:
    """What the upgrades up to ``revisions`` (each included) say makes columns
    undroppable by SQLite in place (see ``constrained_columns``): read in one git run,
    kept in ``texts`` (by blob) for the next call."""
    texts = {} if texts is None else texts
    order = graph.topological(graph.ancestors(revisions, strict=False))
    wanted = [graph.revisions[r] for r in order if r in graph.revisions]
    unread = [r.blob for r in wanted if r.blob not in texts]
    texts.update(ws.repo.read_blobs(unread, missing_ok=True))
    for rev in wanted:
        if rev.blob not in texts:
            text = read_text_anywhere(ws.repo, rev)  # uncommitted: from the working tree
            if text is not None:
                texts[rev.blob] = text
    return constrained_columns(texts[r.blob] for r in wanted if r.blob in texts)


def _texts_of(ws: Workspace, revisions: list[Revision]) -> dict[str, bytes]:
    """blob -> text of ``revisions``: from git in one ``cat-file --batch``, else (a script
    not committed yet) from the working tree when it is the same blob."""
    found: dict[str, bytes] = {}
    with contextlib.suppress(GitError):
        found.update(ws.repo.read_blobs([r.blob for r in revisions], missing_ok=True))
    for rev in revisions:
        if rev.blob not in found:
            path = ws.repo.top / rev.path
            if path.is_file() and ws.repo.blob_id(data := path.read_bytes()) == rev.blob:
                found[rev.blob] = data
    return found


def batch_warnings(plan: Plan, source: Graph) -> tuple[str, ...]:
    """One line per revision whose downgrade SQLite cannot do in place, with the fix."""
    by_rev: dict[str, list[Destructive]] = {}
    for d in plan.batch_needed:
        by_rev.setdefault(d.revision, []).append(d)
    return tuple(
        f"on SQLite, {batch_hint(found, source.revisions[rev].path)}"
        for rev, found in by_rev.items()
    )
