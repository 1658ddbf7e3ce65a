"""``branchmig status``: where the database is against the working tree, computed the way
``sync`` would move it (so what it calls pending is exactly what a sync applies), where
its unknown revisions live, and this database's snapshots: whether the server still holds
each, and which branch would restore it. It claims nothing it has not checked."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from branchmig.alembicenv import alembic_env, start_loading_alembic
from branchmig.dbread import read_database
from branchmig.errors import BranchmigError, DatabaseError, LockedError
from branchmig.graph import Graph, merge_graphs
from branchmig.lifecycle import Held
from branchmig.move.applied import applied_key, applied_source
from branchmig.plan import make_plan
from branchmig.process import Progress
from branchmig.provenance import held_snapshots, restored_by, unsure_texts
from branchmig.session import (
    Recovery,
    backend_of,
    database_id,
    quiet,
    recall,
    recover,
    remember,
    surveyed,
)
from branchmig.state import DatabaseId, Failure, Journal, State, Suspect, moving
from branchmig.verify import SCRATCH_PREFIX, dead_scratches, scratch_is_dead
from branchmig.workspace import WORKTREE, Workspace

if TYPE_CHECKING:
    from branchmig.databases import DatabaseState
    from branchmig.snapshots.pgsurvey import Survey


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
class FailedStep:
    """The last move's failed step, while the database is still where that failure left
    it: ``repeats`` when the sync that ``status`` would otherwise suggest runs that very
    step again; ``next`` what to do instead, in words."""

    failure: Failure
    repeats: bool
    next: str


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
    failed: FailedStep | None = None
    dead_scratches: tuple[str, ...] = ()  # scratch databases of killed verify runs
    # Applied revisions whose text nothing vouches for: revision -> each text git holds
    # ("blob from where"); a revert tries them in this order.
    several_texts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def in_step(self) -> bool:
        """The database matches the working tree, as far as anything can tell."""
        return not (
            self.pending
            or self.unknown
            or self.suspect
            or self.interrupted
            or self.split
            or self.several_texts
        )


def _recalled(
    ws: Workspace, state: State
) -> tuple[tuple[DatabaseState, DatabaseId] | None, Survey | None]:
    """The remembered database (SQLite, or PostgreSQL with its server's answers), read
    without Alembic; (None, None) when env.py must be run."""
    known = recall(ws, state)
    if known is not None:
        return known, None
    found = surveyed(ws, state, others_prefix=SCRATCH_PREFIX)
    if found is None:
        return None, None
    db, dbid, survey = found
    return (db, dbid), survey


def _dead_scratches(url: str) -> tuple[str, ...]:
    if url.startswith("sqlite"):
        return ()
    try:
        return tuple(dead_scratches(url))
    except DatabaseError:
        return ()  # the server lets this user list no databases: nothing to show


def status(ws: Workspace, *, progress: Progress = quiet) -> StatusResult:
    """Where the database is against the working tree. A move that was killed half-way is
    put back first (unless another branchmig is running it)."""
    state = State(ws.state_dir)
    seen = state.read_journal()
    # What env.py gave last time, while it would give the same: no Alembic to load.
    known, survey = _recalled(ws, state) if seen is None else (None, None)
    if known is None:
        start_loading_alembic()
    recovery, interrupted = _recovered(ws, state, seen, progress)
    _, code = ws.graph_at(WORKTREE)
    code.refuse_cycle()  # as `alembic current` refuses such a history
    db, dbid = known if known is not None else _read_and_remember(ws, state)
    if survey is not None:
        stored = {snap.key: (snap.size, snap.backend) for snap in survey.snapshots}
    else:
        stored = _stored(db, state)
    key = applied_key(state, dbid)
    source, pending, unknown = _against_the_tree(ws, state, db, key, code)
    several = unsure_texts(
        ws, state.applied(key), source.ancestors(db.heads, strict=False), target=code
    )
    found = _refs_holding(ws, unknown)
    held = held_snapshots(state, dbid)
    owner = state.owner(dbid.key)
    failure = state.failure(dbid.key)
    if failure is not None and sorted(failure.heads) != sorted(db.heads):
        failure = None  # the database moved since (by hand): that failure is not its state
    tips = ws.repo.branch_tips() if found or failure else {}
    found_in = {r: _named_first(v, tips) for r, v in found.items()}
    failed = None
    if failure is not None:
        failed = failed_step(
            failure,
            code=code,
            applied=source,
            pending=pending,
            unknown=unknown,
            found_in=found_in,
            branches=tips,
            owner=owner.branch if owner else None,
            current=ws.repo.current_branch(),
            tool="flask db" if ws.project.kind == "flask" else "alembic",
        )
    return StatusResult(
        database=dbid.masked,
        branch=ws.repo.current_branch(),
        db_heads=db.heads,
        code_heads=code.heads,
        pending=pending,
        unknown=unknown,
        unknown_found_in=found_in,
        snapshots=snapshot_statuses(ws, held, stored),
        stray_copies=tuple(sorted(k for k in stored if k not in {h.key for h in held})),
        dead_scratches=_dead_scratches(dbid.url)
        if survey is None
        else tuple(n for n in survey.others if scratch_is_dead(n)),
        interrupted=interrupted,
        recovered=recovery.describe() if recovery is not None else None,
        suspect=state.suspect(dbid.key),
        owner=owner.branch if owner else None,
        databases=_each_database(db),
        split=db.disagreement(),
        failed=failed,
        several_texts={r: tuple(t.describe() for t in texts) for r, texts in several.items()},
    )


def _recovered(
    ws: Workspace, state: State, seen: Journal | None, progress: Progress
) -> tuple[Recovery | None, str | None]:
    """A killed move's journal ``seen``: the move put back (its recovery), or, when
    another branchmig holds the lock, what is running (in words)."""
    if seen is None:
        return None, None
    try:
        with state.lock(), alembic_env(ws.project) as env:
            db = read_database(env)
            journal = state.read_journal()
            if journal is None:
                return None, None
            return recover(ws, state, env, db, database_id(ws, db), journal, progress), None
    except LockedError:
        return None, f"{moving(seen.operation, seen.to)} (pid {seen.pid}) is running"


def _read_and_remember(ws: Workspace, state: State) -> tuple[DatabaseState, DatabaseId]:
    """The database read through env.py, remembered for the next time."""
    with alembic_env(ws.project) as env:
        db = read_database(env)
        dbid = database_id(ws, db)
    remember(ws, state, db, dbid)
    return db, dbid


def _against_the_tree(
    ws: Workspace, state: State, db: DatabaseState, key: str, code: Graph
) -> tuple[Graph, tuple[str, ...], tuple[str, ...]]:
    """The graph that applied the database (its scripts recorded under ``key``),
    what a sync would apply, and what it would revert (the tree lacks it, or has it
    changed)."""
    try:
        source = applied_source(ws, state, db.heads, key, previous=None, target=code)
    except BranchmigError:
        source = merge_graphs(code, Graph.build(state.applied(key).values()))
    if all(h in source for h in db.heads):
        plan = make_plan(applied_heads=db.heads, source=source, target=code)
        return source, tuple(plan.upgrade), tuple(plan.downgrade)
    applied = source.ancestors([h for h in db.heads if h in source], strict=False)
    pending = tuple(
        r for r in code.topological(code.ancestors(code.heads, strict=False)) if r not in applied
    )
    return source, pending, tuple(h for h in db.heads if h not in source)


def _refs_holding(ws: Workspace, unknown: tuple[str, ...]) -> dict[str, list[str]]:
    """The refs (of the latest 200 commits refs and the reflog point at) whose scripts
    hold each of the ``unknown`` revisions."""
    found: dict[str, list[str]] = {r: [] for r in unknown}
    if not unknown:
        return found
    for names, commit in ws.repo.all_ref_commits()[:200]:
        try:
            ids = {r.id for r in ws.scripts_at_commit(commit).revisions}
        except BranchmigError:
            continue
        for r in unknown:
            if r in ids:
                found[r].extend(n for n in names if n not in found[r])
    return found


def _each_database(db: DatabaseState) -> tuple[DatabaseHeads, ...]:
    if not db.multi:
        return ()
    return tuple(DatabaseHeads(d.name, DatabaseId.of(d.url).masked, d.heads) for d in db.databases)


def _named_first(names: Iterable[str], branches: Mapping[str, str]) -> tuple[str, ...]:
    """Branches, then other refs (tags, remote branches), then reflog entries (HEAD@{n})
    only when nothing else holds it: what a user would check out comes first."""
    names = list(dict.fromkeys(names))
    named = [n for n in names if not n.startswith("HEAD@{")]
    return tuple(
        sorted(n for n in named if n in branches)
        + sorted(n for n in named if n not in branches)
        + ([] if named else names)
    )


def failed_step(
    failure: Failure,
    *,
    code: Graph,
    applied: Graph,
    pending: tuple[str, ...],
    unknown: tuple[str, ...],
    found_in: Mapping[str, tuple[str, ...]],
    branches: Mapping[str, str],
    owner: str | None,
    current: str | None,
    tool: str,
) -> FailedStep:
    """What to do after ``failure``, given where the database and the tree are now. A
    revision is reverted with the script that applied it, so a fixed downgrade is run by
    hand (``alembic downgrade REV-1``); an upgrade runs the tree's script, so a fixed one is
    run by the next sync or switch."""
    rev = failure.revision
    then = f"branchmig switch {failure.to}" if failure.operation == "switch" else "branchmig sync"
    if failure.direction == "downgrade":
        kept = applied.revisions.get(rev)
        repeats = rev in unknown and (kept is None or kept.blob == failure.blob)
        by_hand = f"{tool} downgrade {rev}-1"
        if rev in code:
            path = code.revisions[rev].path
            return FailedStep(
                failure,
                repeats,
                f"fix the downgrade of '{rev}' in {path} and run it by hand: {by_hand} "
                "(branchmig reverts a revision with the script that applied it, which "
                f"fails); then run: {then}",
            )
        holders = [r for r in found_in.get(rev, ()) if r in branches] or list(found_in.get(rev, ()))
        back = owner if owner in holders else next(iter(holders), None)
        again = f"check out '{current}' again" if current else "check out where you were again"
        if back is None:
            return FailedStep(
                failure,
                repeats,
                f"restore the script of '{rev}' ({failure.path}), fix its downgrade and run it "
                f"by hand: {by_hand}; then run: branchmig sync",
            )
        return FailedStep(
            failure,
            repeats,
            f"go back to a branch whose scripts fit the database (nothing runs): branchmig "
            f"switch {back}; there fix the downgrade of '{rev}' ({failure.path}), commit, and "
            f"run it by hand: {by_hand}; then {again}",
        )
    now = code.revisions.get(rev)
    if rev in pending and now is not None:
        if now.blob != failure.blob:
            return FailedStep(
                failure, False, f"the script of '{rev}' has changed since; run: branchmig sync"
            )
        return FailedStep(
            failure, True, f"fix the upgrade of '{rev}' in {now.path}, then run: branchmig sync"
        )
    where = f" on '{failure.to}'" if failure.operation == "switch" else ""
    return FailedStep(
        failure,
        False,
        f"fix the upgrade of '{rev}' ({failure.path}){where} and commit it, then run: {then}",
    )


def _stored(db: DatabaseState, state: State) -> dict[str, tuple[int, str]]:
    """key -> (size, backend) of every copy the backend holds; empty when the database
    has no snapshot backend (or its server cannot say)."""
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
