"""Bring the database along with the checkout: ``sync`` (what the hooks run),
``switch`` (checkout included) and ``status``.

The database is the source of truth for what is applied. The scripts that applied it are
found, in order, in branchmig's record of what it last saw applied, the previous HEAD,
the working tree, then every branch, tag and HEAD reflog entry; their texts come from the
copies branchmig keeps, else from git's objects. The revert phase runs those old texts;
the upgrade phase runs the working tree's.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from branchmig.analysis import with_destructive
from branchmig.errors import (
    BranchmigError,
    DatabaseError,
    GitError,
    LockedError,
    PlanError,
    SnapshotError,
)
from branchmig.graph import Graph, Revision, merge_graphs
from branchmig.plan import Plan, make_plan
from branchmig.snapshots import backend_for_url, mask_url
from branchmig.state import Journal, SnapshotRecord, State, database_key
from branchmig.workspace import WORKTREE, Workspace

if TYPE_CHECKING:
    from branchmig.runner import AlembicEnv, DatabaseState
    from branchmig.snapshots import SnapshotBackend

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class MoveResult:
    """What a sync or a switch did (or, with ``dry_run``, would do)."""

    database: str  # masked URL
    branch: str | None
    before: tuple[str, ...]
    after: tuple[str, ...]
    plan: Plan
    dry_run: bool = False
    saved: str | None = None  # snapshot key saved for the branch left
    restored: str | None = None  # snapshot key restored for the branch entered
    notes: tuple[str, ...] = ()


@dataclass
class _Context:
    ws: Workspace
    state: State
    env: AlembicEnv
    db: DatabaseState
    dbkey: str
    progress: Progress
    notes: list[str] = field(default_factory=list)
    recovered: bool = False  # a killed switch was put back on opening

    @property
    def masked(self) -> str:
        return mask_url(self.db.url)


# -- finding the scripts the database has ------------------------------------------------


def applied_source(
    ws: Workspace, state: State, heads: tuple[str, ...], dbkey: str, *,
    previous: str | None, target: Graph,
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
    for _name, commit in ws.repo.all_ref_commits():
        if commit in seen:
            continue
        seen.add(commit)
        try:
            graph = merge_graphs(graph, Graph.build(ws.scripts_at_commit(commit).revisions))
        except BranchmigError:
            continue  # a broken old ref must not stop the search
        if _complete(graph, heads):
            return graph
    missing = [h for h in heads if h not in graph] or [
        r for r in _missing_ancestors(graph, heads)]
    raise PlanError(
        f"Revision {', '.join(repr(m) for m in missing)} is applied to the database but its "
        "script is on no branch, tag or reflog entry, and branchmig kept no copy. Restore "
        "the script into the versions folder, then run: branchmig sync")


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


def _script_text(ws: Workspace, state: State, rev: Revision) -> bytes:
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
        from branchmig.gitrepo import blob_id

        data = path.read_bytes()
        if blob_id(data) == rev.blob:
            return data
    raise PlanError(
        f"Revision '{rev.id}' is applied to the database, but its script ({rev.path}, blob "
        f"{rev.blob[:12]}) is on no branch, tag or reflog entry and branchmig kept no copy, "
        "so it cannot be reverted; put the script back into the versions folder, then run: "
        "branchmig sync")


# -- the pieces of a move ------------------------------------------------------------------


@contextmanager
def _opened(ws: Workspace, progress: Progress, *, dry_run: bool = False) -> Iterator[_Context]:
    from branchmig.runner import alembic_env, read_database

    state = State(ws.state_dir)
    with state.lock(), alembic_env(ws.project) as env:
        interrupted = state.read_journal() if dry_run else None
        recovered = False if dry_run else _recover(ws, state, env, progress)
        db = read_database(env)
        ctx = _Context(ws, state, env, db, database_key(mask_url(db.url)), progress,
                       recovered=recovered)
        if interrupted is not None:
            ctx.notes.append(f"a {interrupted.operation} to '{interrupted.to}' was "
                             "interrupted and is not put back by a dry run; run: "
                             "branchmig status")
        yield ctx


def _backend(ctx: _Context, terminate: bool) -> SnapshotBackend:
    return backend_for_url(ctx.db.url, store_dir=ctx.state.snapshot_dir,
                           terminate_connections=terminate, progress=ctx.progress)


def _slug(branch: str | None) -> str:
    return re.sub(r"[^a-z0-9]+", "-", (branch or "detached").lower()).strip("-")[:22] or "x"


def _branch_key(dbkey: str, branch: str | None) -> str:
    return f"b-{_slug(branch)}-{dbkey[:6]}"


def _materialise(ctx: _Context, revisions: tuple[str, ...], graph: Graph,
                 folder: Path) -> dict[str, tuple[Path, bytes]]:
    texts = {}
    for rev_id in revisions:
        rev = graph.revisions[rev_id]
        text = _script_text(ctx.ws, ctx.state, rev)
        path = folder / f"{rev_id}_{Path(rev.path).name}"
        path.write_bytes(text)
        texts[rev_id] = (path, text)
    return texts


def _worktree_texts(ctx: _Context, revisions: tuple[str, ...],
                    graph: Graph) -> dict[str, tuple[Path, bytes]]:
    texts = {}
    for rev_id in revisions:
        rev = graph.revisions[rev_id]
        path = ctx.ws.repo.top / rev.path
        texts[rev_id] = (path, path.read_bytes())
    return texts


def _record(ctx: _Context, graph: Graph, heads: tuple[str, ...]) -> None:
    """Remember which scripts the database now has, and keep a copy of each."""
    applied = {r: graph.revisions[r] for r in graph.ancestors(heads, strict=False)
               if r in graph}
    known = ctx.state.applied(ctx.dbkey)
    if known == applied:
        return
    recorded = {rev.blob for rev in known.values()}  # kept when they were recorded
    new = [rev for rev in applied.values() if rev.blob not in recorded]
    missing = {rev.blob: rev for rev in new if not ctx.state.has_kept(rev.blob)}
    for blob, text in ctx.ws.repo.read_blobs(missing, missing_ok=True):
        ctx.state.keep_script(blob, text)
        del missing[blob]
    for rev in missing.values():  # not in git: uncommitted scripts of the working tree
        with contextlib.suppress(PlanError):
            ctx.state.keep_script(rev.blob, _script_text(ctx.ws, ctx.state, rev))
    ctx.state.record_applied(ctx.dbkey, applied)


def _run(ctx: _Context, plan: Plan, source: Graph, target: Graph, *,
         between: Callable[[], None] | None = None) -> tuple[str, ...]:
    """Revert with the old scripts, call ``between`` (the checkout), apply the new."""
    from branchmig.runner import Phase, run_phases

    def on_step(direction: str, rev: str) -> None:
        ctx.progress(f"  {'reverted' if direction == 'downgrade' else 'applied '} {rev}")

    applied = source.ancestors(ctx.db.heads)
    kept = set(applied) - set(plan.downgrade)
    with tempfile.TemporaryDirectory(prefix="branchmig-old-") as tmp:
        old_texts = _materialise(ctx, plan.downgrade, source, Path(tmp))
        run_phases(ctx.env, [
            Phase("downgrade", plan.downgrade, source, applied, lambda: old_texts,
                  start_heads=ctx.db.heads),
            Phase("upgrade", plan.upgrade, target, set(target.ancestors(target.heads)) | kept,
                  lambda: _worktree_texts(ctx, plan.upgrade, target),
                  start_heads=plan.common),
        ], between=between, on_step=on_step)
    return target.heads


def _heads_now(ctx: _Context) -> tuple[str, ...]:
    from branchmig.runner import read_database

    try:
        return read_database(ctx.env).heads
    except DatabaseError:
        return ()


def _recover(ws: Workspace, state: State, env: AlembicEnv, progress: Progress) -> bool:
    """Finish the recovery of a switch that was killed half-way: the database goes back
    to its snapshot from before it, and a checkout branchmig made is undone. Called with
    the lock held, so the journal's process is gone. False when there was none."""
    journal = state.read_journal()
    if journal is None:
        return False
    from branchmig.runner import read_database

    progress(f"branchmig: a {journal.operation} to '{journal.to}' was interrupted "
             f"(pid {journal.pid}); putting things back as they were before it")
    db = read_database(env)
    restored = False
    if journal.safety_snapshot and journal.phase != "start":
        backend = backend_for_url(db.url, store_dir=state.snapshot_dir, progress=progress)
        if backend.exists(journal.safety_snapshot):
            env.dispose_engines()
            keep = journal.restored_snapshot if journal.phase == "saved" else None
            if keep and backend.exists(keep):
                keep = None  # the entering branch's snapshot is intact already
            backend.restore(journal.safety_snapshot, keep_current_as=keep)
            state.remove_snapshot(journal.safety_snapshot)
            restored = True
            progress(f"branchmig: restored snapshot '{journal.safety_snapshot}'")
        stored = {s.key for s in backend.stored()}
        for record in state.snapshots():
            if record.database == journal.database and record.key not in stored:
                state.remove_snapshot(record.key)
    if journal.checked_out and journal.from_commit and (restored or journal.phase == "start"):
        ws.repo.checkout(journal.from_branch or journal.from_commit,
                         env={"BRANCHMIG_SKIP_HOOK": "1"})
        progress(f"branchmig: checked out '{journal.from_branch or journal.from_commit}' again")
    elif not restored and journal.phase != "start":
        heads = read_database(env).heads
        progress(f"branchmig: no snapshot was taken: the database is left at "
                 f"{_names(heads)}; run: branchmig sync")
    state.clear_journal()
    return True


def _names(heads: tuple[str, ...]) -> str:
    return ", ".join(f"'{h}'" for h in heads) or "base (no revision)"


# -- sync and switch ----------------------------------------------------------------------


def sync(
    ws: Workspace, *, previous: str | None = None, dry_run: bool = False,
    snapshot: bool | None = None, terminate_connections: bool = False,
    progress: Progress = _quiet, previous_branch: str | None = None,
) -> MoveResult:
    """Bring the database to the working tree's heads. ``previous`` is the commit the
    database followed (the hook's PREV); its scripts revert what the tree lacks."""
    from branchmig.runner import start_loading_alembic

    start_loading_alembic()
    _, target = ws.graph_at(WORKTREE)  # read while Alembic loads
    with _opened(ws, progress, dry_run=dry_run) as ctx:
        if ctx.recovered:  # putting back a killed switch may have checked out again
            _, target = ws.graph_at(WORKTREE)
        return _move(ctx, target=target, previous=previous, dry_run=dry_run,
                     snapshot=snapshot, terminate=terminate_connections, checkout=None,
                     leaving=previous_branch, entering=ws.repo.current_branch())


def switch(
    ws: Workspace, *, branch: str, dry_run: bool = False, snapshot: bool | None = None,
    terminate_connections: bool = False, progress: Progress = _quiet,
) -> MoveResult:
    """Revert to the common revisions with this branch's scripts, ``git checkout
    BRANCH``, apply its heads. All or nothing when snapshots are on."""
    from branchmig.runner import start_loading_alembic

    start_loading_alembic()
    repo = ws.repo
    commit = repo.resolve(branch)
    head = repo.head_commit()
    _check_clean(ws, head, commit, branch)
    target = Graph.build(ws.scripts_at_commit(commit, ref=branch).revisions)
    entering = branch if repo.is_branch(branch) else None
    with _opened(ws, progress, dry_run=dry_run) as ctx:
        return _move(ctx, target=target, previous=head, dry_run=dry_run, snapshot=snapshot,
                     terminate=terminate_connections, checkout=branch,
                     leaving=repo.current_branch(), entering=entering)


def _check_clean(ws: Workspace, head: str | None, commit: str, branch: str) -> None:
    dirty = ws.repo.dirty_paths()
    if not dirty:
        return
    watched = ws.project.watch_paths()
    in_migrations = [p for p in dirty
                     if any(p == w or p.startswith(w.rstrip("/") + "/") for w in watched)]
    if in_migrations:
        raise GitError(
            f"Uncommitted changes in the migrations ({', '.join(in_migrations[:3])}"
            f"{', …' if len(in_migrations) > 3 else ''}); commit or stash them, then run: "
            f"branchmig switch {branch}")
    changed = set(ws.repo.git("diff", "--name-only", "-z", head or commit, commit)
                  .split("\0")) if head else set()
    blocking = sorted(p for p in dirty if p in changed)
    if blocking:
        raise GitError(
            f"Uncommitted changes to {', '.join(blocking[:3])} would be overwritten by the "
            f"checkout of '{branch}'; commit or stash them first")


def _move(
    ctx: _Context, *, target: Graph, previous: str | None, dry_run: bool,
    snapshot: bool | None, terminate: bool, checkout: str | None,
    leaving: str | None, entering: str | None,
) -> MoveResult:
    ws, state = ctx.ws, ctx.state
    mode = ws.project.settings.snapshots
    use_snapshots = snapshot if snapshot is not None else mode != "never"
    before = ctx.db.heads
    source = applied_source(ws, state, before, ctx.dbkey, previous=previous, target=target)
    restore = (_restorable(ctx, entering, target)
               if use_snapshots and entering and leaving != entering else None)
    leaving_graph = source
    if restore is not None:  # the plan starts from the snapshot, not from the database
        plan = make_plan(applied_heads=tuple(restore.heads), source=target, target=target)
    else:
        plan = with_destructive(
            ws, make_plan(applied_heads=before, source=source, target=target), source)
    for rev_id in plan.downgrade:  # fail before anything is touched, dry run or not
        _script_text(ws, state, source.revisions[rev_id])
    result = MoveResult(database=ctx.masked, branch=entering, before=before, after=before,
                        plan=plan, dry_run=dry_run,
                        restored=restore.key if restore is not None else None,
                        notes=tuple(ctx.notes))
    if dry_run:
        return result
    if plan.is_noop and restore is None:
        if checkout:
            ws.repo.checkout(checkout, env={"BRANCHMIG_SKIP_HOOK": "1"})
        _record(ctx, target, before)
        return result

    backend = _backend(ctx, terminate) if use_snapshots else None
    keep_branch = bool(plan.destructive) or mode == "always" or snapshot is True or (
        restore is not None)
    saved_key = _branch_key(ctx.dbkey, leaving) if keep_branch else f"safety-{ctx.dbkey[:8]}"
    journal = Journal(operation="switch" if checkout else "sync", pid=os.getpid(),
                      started=time.time(), database=ctx.dbkey, from_commit=previous,
                      from_branch=leaving, to=checkout or entering or "the working tree",
                      safety_snapshot=saved_key if backend else None,
                      restored_snapshot=restore.key if restore is not None else None)
    state.write_journal(journal)
    saved: str | None = None
    resaved = False  # the entering branch's snapshot, saved again after its restore
    try:
        if backend is not None:
            ctx.env.dispose_engines()
            if restore is not None:
                ctx.progress(f"branchmig: restoring the snapshot of '{entering}', keeping "
                             f"the database of '{leaving or 'HEAD'}' as '{saved_key}'")
                backend.restore(restore.key, keep_current_as=saved_key)
                ctx.db = replace(ctx.db, heads=tuple(restore.heads))
                source = target
            else:
                ctx.progress(f"branchmig: saving the database of '{leaving or 'HEAD'}' as "
                             f"snapshot '{saved_key}'")
                backend.save(saved_key)
            saved = saved_key
            state.add_snapshot(SnapshotRecord(
                key=saved_key, branch=leaving, commit=previous, heads=list(before),
                database=ctx.dbkey, backend=backend.name, size=_size(backend, saved_key),
                purpose="branch" if keep_branch else "safety"),
                applied={r: leaving_graph.revisions[r].blob
                         for r in leaving_graph.ancestors(before, strict=False)})
            journal.phase = "saved"
            state.write_journal(journal)
            if restore is not None and not plan.is_noop:
                # What arrived on the branch since is applied next: keep the snapshot as
                # it was until that worked, so a failure loses neither database.
                backend.save(restore.key)
                resaved = True
        journal.phase = "migrating"
        state.write_journal(journal)
        between = None
        if checkout is not None:
            # _check_clean refused dirty or untracked migrations: after the checkout the
            # tree holds exactly the target commit's scripts.
            def between() -> None:
                ws.repo.checkout(checkout, env={"BRANCHMIG_SKIP_HOOK": "1"})
                journal.checked_out = True
                state.write_journal(journal)
        after = _run(ctx, plan, source, target, between=between)
    except BaseException as err:
        _roll_back(ctx, backend, saved, restore.key if restore and not resaved else None,
                   journal, checkout, err)
        raise
    if restore is not None:
        if resaved and backend is not None:
            backend.drop(restore.key)
        state.remove_snapshot(restore.key)
    _record(ctx, target, after)
    if saved and not keep_branch and backend is not None:
        backend.drop(saved)
        state.remove_snapshot(saved)
        saved = None
    state.clear_journal()
    return replace(result, after=after, saved=saved, notes=tuple(ctx.notes))


def _size(backend: SnapshotBackend, key: str) -> int:
    for stored in backend.stored():
        if stored.key == key:
            return stored.size
    return 0


def _restorable(ctx: _Context, branch: str | None, target: Graph) -> SnapshotRecord | None:
    """The entering branch's snapshot, when every revision it holds is still in the
    branch's graph with the same script."""
    if branch is None:
        return None
    key = _branch_key(ctx.dbkey, branch)
    for record in ctx.state.snapshots():
        if record.key != key or record.database != ctx.dbkey:
            continue
        holds = ctx.state.snapshot_applied(key)
        if holds is None:
            ctx.notes.append(f"what the snapshot of '{branch}' holds is not known; "
                             "migrating instead")
            return None
        stale = [r for r, blob in holds.items()
                 if r not in target or target.revisions[r].blob != blob]
        if stale or any(h not in target for h in record.heads):
            ctx.notes.append(f"the snapshot of '{branch}' is out of date (its revisions "
                             f"changed: {', '.join(stale[:3]) or 'heads gone'}); migrating "
                             "instead")
            return None
        return record
    return None


def _roll_back(ctx: _Context, backend: SnapshotBackend | None, saved: str | None,
               restored: str | None, journal: Journal, checkout: str | None,
               err: BaseException) -> None:
    """Put the database (and a checkout we made) back as they were. ``restored`` is the
    entering branch's snapshot when the live database still is it, untouched."""
    rolled_back = False
    if backend is not None and saved is not None:
        try:
            ctx.env.dispose_engines()
            backend.restore(saved, keep_current_as=restored)
            ctx.state.remove_snapshot(saved)
            rolled_back = True
            ctx.notes.append(f"the database was restored from snapshot '{saved}'")
        except BranchmigError as restore_err:
            ctx.state.clear_journal()
            raise SnapshotError(
                f"{str(err).rstrip('. ')}; restoring the snapshot '{saved}' failed too: "
                f"{str(restore_err).rstrip('. ')}. Run: branchmig snapshot restore {saved}"
            ) from restore_err
    elif backend is not None and journal.phase == "start":
        rolled_back = True  # nothing had touched the database yet
    back = journal.from_branch or journal.from_commit
    if journal.checked_out and checkout is not None and rolled_back and back:
        with contextlib.suppress(GitError):
            ctx.ws.repo.checkout(back, env={"BRANCHMIG_SKIP_HOOK": "1"})
    ctx.state.clear_journal()
    if not isinstance(err, BranchmigError) or not err.args:
        return
    said = str(err.args[0]).rstrip(". ")
    if rolled_back:
        err.args = (f"{said}. Nothing changed: the database is as it was before",)
    elif journal.phase == "migrating":
        heads = _heads_now(ctx)
        if journal.checked_out or checkout is None:
            then = "fix the script, then run: branchmig sync"
        else:
            then = f"fix the script, then run: branchmig switch {checkout}"
        err.args = (f"{said}. The database is left at {_names(heads)}, the last "
                    f"revision that completed; {then}",)


# -- status -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusResult:
    database: str
    branch: str | None
    db_heads: tuple[str, ...]
    code_heads: tuple[str, ...]
    pending: tuple[str, ...]
    unknown: tuple[str, ...]
    unknown_found_in: Mapping[str, tuple[str, ...]]
    snapshots: tuple[SnapshotRecord, ...]
    interrupted: str | None = None
    recovered: str | None = None  # an interrupted switch this call put back


def status(ws: Workspace, *, progress: Progress = _quiet) -> StatusResult:
    """Where the database is against the working tree, and where its unknown revisions
    live. A switch that was killed half-way is put back first (unless another branchmig
    is running)."""
    from branchmig.runner import alembic_env, read_database, start_loading_alembic

    start_loading_alembic()
    state = State(ws.state_dir)
    recovered = None
    journal = state.read_journal()
    if journal is not None:
        try:
            with state.lock(), alembic_env(ws.project) as env:
                _recover(ws, state, env, progress)
            recovered = f"{journal.operation} to '{journal.to}' (pid {journal.pid})"
        except LockedError:
            pass
    _, code = ws.graph_at(WORKTREE)
    with alembic_env(ws.project) as env:
        db = read_database(env)
    dbkey = database_key(mask_url(db.url))
    record = state.applied(dbkey)
    graph = merge_graphs(code, Graph.build(record.values()))
    applied = graph.ancestors(db.heads, strict=False)
    unknown = tuple(r for r in graph.topological(applied & set(graph.revisions))
                    if r not in code) + tuple(h for h in db.heads if h not in graph)
    pending = tuple(r for r in code.topological(code.ancestors(code.heads, strict=False))
                    if r not in applied)
    found: dict[str, list[str]] = {r: [] for r in unknown}
    if unknown:
        for name, commit in ws.repo.all_ref_commits()[:200]:
            try:
                ids = {r.id for r in ws.scripts_at_commit(commit).revisions}
            except BranchmigError:
                continue
            for r in unknown:
                if r in ids and name not in found[r]:
                    found[r].append(name)
    journal = state.read_journal()
    return StatusResult(
        database=mask_url(db.url), branch=ws.repo.current_branch(), db_heads=db.heads,
        code_heads=code.heads, pending=pending, unknown=unknown,
        unknown_found_in={r: tuple(v) for r, v in found.items()},
        snapshots=tuple(s for s in state.snapshots() if s.database == dbkey),
        interrupted=f"{journal.operation} to '{journal.to}' (pid {journal.pid})"
        if journal else None,
        recovered=recovered,
    )
