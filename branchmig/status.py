"""``branchmig status``: where the database is against the working tree, computed the way
``sync`` would move it (so what it calls pending is exactly what a sync applies), where
its unknown revisions live, and this database's snapshots: whether the server still holds
each, and which branch would restore it. It claims nothing it has not checked."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from branchmig.errors import BranchmigError, LockedError
from branchmig.graph import Graph, merge_graphs
from branchmig.lifecycle import Held
from branchmig.plan import make_plan
from branchmig.provenance import held_snapshots, restored_by
from branchmig.session import Recovery, quiet
from branchmig.state import DatabaseId, State, Suspect
from branchmig.workspace import WORKTREE, Workspace

if TYPE_CHECKING:
    from branchmig.databases import DatabaseState

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SnapshotStatus:
    held: Held
    present: bool  # the backend holds its copy
    restored_by: tuple[str, ...]  # the branches whose checkout would restore it
    size: int = 0
    backend: str = ""


@dataclass(frozen=True)
class DatabaseHeads:
    """One database of a ``--multidb`` project: its name ("" for the default), its URL as
    shown, and its revisions."""

    name: str
    database: str
    heads: tuple[str, ...]


@dataclass(frozen=True)
class StatusResult:
    database: str
    branch: str | None
    db_heads: tuple[str, ...]
    code_heads: tuple[str, ...]
    pending: tuple[str, ...]  # what a sync applies
    unknown: tuple[str, ...]  # what a sync reverts (the tree lacks it, or has it changed)
    unknown_found_in: Mapping[str, tuple[str, ...]]
    snapshots: tuple[SnapshotStatus, ...]
    stray_copies: tuple[str, ...] = ()  # held by the server, in no index entry
    interrupted: str | None = None  # a move still running (another process holds the lock)
    recovered: str | None = None  # a killed move this call put back, in words
    suspect: Suspect | None = None
    owner: str | None = None  # the branch branchmig last brought the database to
    databases: tuple[DatabaseHeads, ...] = ()  # each one, when the project has several
    split: str | None = None  # they are at different revisions, in words

    @property
    def in_step(self) -> bool:
        """The database matches the working tree, as far as anything can tell."""
        return not (self.pending or self.unknown or self.suspect or self.interrupted or self.split)


def status(ws: Workspace, *, progress: Progress = quiet) -> StatusResult:
    """Where the database is against the working tree. A move that was killed half-way is
    put back first (unless another branchmig is running it)."""
    from branchmig.runner import alembic_env, read_database, start_loading_alembic
    from branchmig.session import database_id, recall, recover, remember

    state = State(ws.state_dir)
    recovery: Recovery | None = None
    interrupted = None
    seen = state.read_journal()
    # What env.py gave last time, while it would give the same: no Alembic to load.
    known = recall(ws, state) if seen is None else None
    if known is None:
        start_loading_alembic()
    if seen is not None:
        try:
            with state.lock(), alembic_env(ws.project) as env:
                db = read_database(env)
                journal = state.read_journal()
                if journal is not None:
                    recovery = recover(ws, state, env, db, database_id(ws, db), journal, progress)
        except LockedError:
            interrupted = f"a {seen.operation} to '{seen.to}' (pid {seen.pid}) is running"
    _, code = ws.graph_at(WORKTREE)
    if known is not None:
        db, dbid = known
    else:
        with alembic_env(ws.project) as env:
            db = read_database(env)
            dbid = database_id(ws, db)
        remember(ws, state, db, dbid)
    stored = _stored(db, state)
    from branchmig.switching import applied_source

    applied_key = next((k for k in dbid.keys if state.applied(k)), dbid.key)
    try:
        source = applied_source(ws, state, db.heads, applied_key, previous=None, target=code)
    except BranchmigError:
        source = merge_graphs(code, Graph.build(state.applied(applied_key).values()))
    unknown: tuple[str, ...]
    if all(h in source for h in db.heads):
        plan = make_plan(applied_heads=db.heads, source=source, target=code)
        pending, unknown = plan.upgrade, plan.downgrade
    else:
        applied = source.ancestors([h for h in db.heads if h in source], strict=False)
        pending = tuple(
            r
            for r in code.topological(code.ancestors(code.heads, strict=False))
            if r not in applied
        )
        unknown = tuple(h for h in db.heads if h not in source)
    found: dict[str, list[str]] = {r: [] for r in unknown}
    if unknown:
        for names, commit in ws.repo.all_ref_commits()[:200]:
            try:
                ids = {r.id for r in ws.scripts_at_commit(commit).revisions}
            except BranchmigError:
                continue
            for r in unknown:
                if r in ids:
                    found[r].extend(n for n in names if n not in found[r])
    held = held_snapshots(state, dbid)
    owner = state.owner(dbid.key)
    return StatusResult(
        database=dbid.masked,
        branch=ws.repo.current_branch(),
        db_heads=db.heads,
        code_heads=code.heads,
        pending=tuple(pending),
        unknown=tuple(unknown),
        unknown_found_in={r: tuple(v) for r, v in found.items()},
        snapshots=snapshot_statuses(ws, held, stored),
        stray_copies=tuple(sorted(k for k in stored if k not in {h.key for h in held})),
        interrupted=interrupted,
        recovered=recovery.describe() if recovery is not None else None,
        suspect=state.suspect(dbid.key),
        owner=owner.branch if owner else None,
        databases=tuple(
            DatabaseHeads(d.name, DatabaseId.of(d.url).masked, d.heads) for d in db.databases
        )
        if db.multi
        else (),
        split=db.disagreement(),
    )


def _stored(db: DatabaseState, state: State) -> dict[str, tuple[int, str]]:
    """key -> (size, backend) of every copy the backend holds; empty when the database
    has no snapshot backend (or its server cannot say)."""
    from branchmig.session import backend_of

    try:
        backend = backend_of(db, state)
        return {s.key: (s.size, s.backend) for s in backend.stored()}
    except BranchmigError:
        return {}


def snapshot_statuses(
    ws: Workspace, held: list[Held], stored: Mapping[str, tuple[int, str]]
) -> tuple[SnapshotStatus, ...]:
    """Each snapshot, newest first, with whether its copy exists and who restores it."""
    by = restored_by(ws, held)
    out = []
    for h in sorted(held, key=lambda h: -h.created):
        size, backend = stored.get(h.key, (0, ""))
        out.append(SnapshotStatus(h, h.key in stored, by[h.key], size, backend))
    return tuple(out)
