"""The scripts that applied the database, found or kept: branchmig's record of what it
last saw applied, the previous HEAD, the target, then every branch, tag and HEAD reflog
entry; their texts from the copies branchmig keeps, else from git's objects, else the
working tree (when the blob matches)."""

from __future__ import annotations

import contextlib
from collections.abc import Collection

from branchmig.errors import BranchmigError, GitError, PlanError
from branchmig.graph import Graph, Revision, merge_graphs
from branchmig.provenance import unsure_texts
from branchmig.session import Session
from branchmig.state import DatabaseId, State
from branchmig.workspace import Workspace


def applied_source(
    ws: Workspace,
    state: State,
    heads: tuple[str, ...],
    dbkey: str,
    *,
    previous: str | None,
    target: Graph,
) -> Graph:
    """A graph holding every revision the database has applied, as it was applied: from
    branchmig's record, else the previous HEAD, the target, then any ref. It stops at the
    first layer that holds them all."""
    graph = Graph.build(state.applied(dbkey).values())
    if _complete(graph, heads):
        return graph
    if previous:
        graph = merge_graphs(graph, Graph.build(ws.scripts_at_commit(previous).revisions))
        if _complete(graph, heads):
            return graph
    graph = merge_graphs(graph, target)
    if _complete(graph, heads):
        return graph
    seen = {previous}
    for _names, commit in ws.repo.all_ref_commits():
        if commit in seen:
            continue
        seen.add(commit)
        try:
            graph = merge_graphs(graph, Graph.build(ws.scripts_at_commit(commit).revisions))
        except BranchmigError:
            continue  # a broken old ref must not stop the search
        if _complete(graph, heads):
            return graph
    missing = [h for h in heads if h not in graph] or [r for r in _missing_ancestors(graph, heads)]
    raise PlanError(
        f"Revision {', '.join(repr(m) for m in missing)} is applied to the database but its "
        "script is on no branch, tag or reflog entry, and branchmig kept no copy. Restore "
        "the script into the versions folder, then run: branchmig sync"
    )


def _complete(graph: Graph, heads: tuple[str, ...]) -> bool:
    return not _missing_ancestors(graph, heads)


def _missing_ancestors(graph: Graph, heads: tuple[str, ...]) -> list[str]:
    missing, seen, stack = [], set(), list(heads)
    while stack:
        rev_id = stack.pop()
        if rev_id in seen:
            continue
        seen.add(rev_id)
        if rev_id not in graph:
            missing.append(rev_id)
            continue
        stack.extend(graph.parents_of(rev_id))
    return missing


def script_text(ws: Workspace, state: State, rev: Revision) -> bytes:
    text = state.kept_script(rev.blob)
    if text is not None:
        return text
    try:
        for _, data in ws.repo.read_blobs([rev.blob]):
            return data
    except GitError:
        pass
    path = ws.repo.top / rev.path
    if path.is_file():
        data = path.read_bytes()
        if ws.repo.blob_id(data) == rev.blob:
            return data
    raise PlanError(
        f"Revision '{rev.id}' is applied to the database, but its script ({rev.path}, blob "
        f"{rev.blob[:12]}) is on no branch, tag or reflog entry and branchmig kept no copy, "
        "so it cannot be reverted; put the script back into the versions folder, then run: "
        "branchmig sync"
    )


def record_applied(
    s: Session, graph: Graph, heads: tuple[str, ...], *, ran: Collection[str] = ()
) -> None:
    """Remember which scripts the database now has, and keep a copy of each. A revision
    branchmig neither ran (``ran``) nor recorded before, applied by plain Alembic, is
    recorded only when git holds one text of it: of several, nothing says which one
    migrated the database (a revert then tries each)."""
    applied = {r: graph.revisions[r] for r in graph.ancestors(heads, strict=False) if r in graph}
    known = s.state.applied(s.dbkey)
    if known == applied:
        return
    ran = frozenset(ran)  # a restore passes its snapshot's whole history: look up, not scan
    seen = [r for r, rev in applied.items() if r not in ran and known.get(r) != rev]
    if seen:
        for rev_id in unsure_texts(s.ws, known, seen, target=graph):
            del applied[rev_id]
    recorded = {rev.blob for rev in known.values()}  # kept when they were recorded
    new = [rev for rev in applied.values() if rev.blob not in recorded]
    missing = {rev.blob: rev for rev in new if not s.state.has_kept(rev.blob)}
    for blob, text in s.ws.repo.read_blobs(missing, missing_ok=True):
        s.state.keep_script(blob, text)
        del missing[blob]
    for rev in missing.values():  # not in git: uncommitted scripts of the working tree
        with contextlib.suppress(PlanError):
            s.state.keep_script(rev.blob, script_text(s.ws, s.state, rev))
    s.state.record_applied(s.dbkey, applied)


def applied_key(state: State, dbid: DatabaseId) -> str:
    """The key this database's applied record is under (an earlier branchmig's, until
    this one writes it)."""
    return next((k for k in dbid.keys if state.applied(k)), dbid.key)
