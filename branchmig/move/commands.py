"""The entries of every move: ``sync`` (what the hooks run) and ``switch`` (checkout
included) build a ``MoveRequest`` and run it through the pipeline: gather and decide,
execute, a ``MoveResult``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from branchmig.alembicenv import start_loading_alembic
from branchmig.errors import GitError
from branchmig.graph import Graph
from branchmig.move.applied import record_applied
from branchmig.move.execute import carry_out, finish
from branchmig.move.gather import decide
from branchmig.move.request import MoveRequest
from branchmig.move.result import MoveResult
from branchmig.process import Progress
from branchmig.session import SKIP_HOOK, Session, opened, quiet, recalled
from branchmig.workspace import WORKTREE, Workspace


def sync(
    ws: Workspace,
    *,
    previous: str | None = None,
    dry_run: bool = False,
    snapshot: bool | None = None,
    terminate_connections: bool = False,
    progress: Progress = quiet,
    previous_branch: str | None = None,
    rehearse: bool | None = None,
) -> MoveResult:
    """Bring the database to the working tree's heads. ``previous`` is the commit the
    database followed (the hook's PREV); its scripts revert what the tree lacks.
    ``previous_branch`` is the branch a checkout left, when the caller knows it."""

    def ask(s: Session, target: Graph) -> MoveRequest:
        return _sync_request(
            s,
            target,
            previous=previous,
            previous_branch=previous_branch,
            dry_run=dry_run,
            snapshot=snapshot,
            terminate=terminate_connections,
            rehearse=rehearse,
        )

    if not dry_run:
        moved = _sync_remembered(ws, progress, previous, ask)
        if moved is not None:
            return moved

    start_loading_alembic()
    _, target = ws.graph_at(WORKTREE)  # read while Alembic loads
    with opened(ws, progress, dry_run=dry_run, trust_remembered=True) as s:
        if s.recovery is not None and s.recovery.checked_out:
            _, target = ws.graph_at(WORKTREE)
        return _move(s, ask(s, target))


def _sync_request(
    s: Session,
    target: Graph,
    *,
    previous: str | None,
    previous_branch: str | None,
    dry_run: bool,
    snapshot: bool | None,
    terminate: bool,
    rehearse: bool | None,
) -> MoveRequest:
    """The database to the working tree (``target``), on the branch checked out."""
    repo = s.ws.repo
    # A fast-forward rebase's only hook runs detached: it stays on its branch.
    return MoveRequest(
        target=target,
        target_commit=repo.head_commit(),
        previous=previous,
        checkout=None,
        hint=previous_branch or repo.rebasing_branch(),
        entering=repo.current_branch() or repo.rebasing_branch(),
        dry_run=dry_run,
        snapshot=snapshot,
        terminate=terminate,
        rehearse=rehearse,
    )


class _NeedsEnv(Exception):
    """The move runs migrations: a remembered session cannot carry it out."""


def _sync_remembered(
    ws: Workspace,
    progress: Progress,
    previous: str | None,
    ask: Callable[[Session, Graph], MoveRequest],
) -> MoveResult | None:
    """A sync that only restores the entering branch's snapshot (or runs nothing), done
    on the remembered database without loading Alembic; None when it is not such a sync
    or the database cannot be trusted as remembered."""
    with recalled(ws, progress) as s:
        if s is None:
            return None
        # Only a branch with a snapshot of its own can be entered by a restore, and only a
        # checkout on the same commit (a branch made there) by a save that runs nothing:
        # any other move runs migrations, so it goes the full way at once rather than read
        # the scripts and decide twice (a stray snapshot restored on its line goes that way).
        entering = ws.repo.current_branch() or ws.repo.rebasing_branch()
        if entering is None or not (
            any(r.branch == entering and r.database in s.dbid.keys for r in s.state.snapshots())
            or (previous is not None and previous == ws.repo.head_commit())
        ):
            return None
        _, target = ws.graph_at(WORKTREE)
        try:
            return _move(s, ask(s, target))
        except _NeedsEnv:
            return None


def switch(
    ws: Workspace,
    *,
    branch: str,
    dry_run: bool = False,
    snapshot: bool | None = None,
    terminate_connections: bool = False,
    progress: Progress = quiet,
    rehearse: bool | None = None,
) -> MoveResult:
    """Revert to the common revisions with this branch's scripts, ``git checkout
    BRANCH``, apply its heads. All or nothing when snapshots are on."""
    start_loading_alembic()
    repo = ws.repo
    commit = repo.resolve(branch)
    head = repo.head_commit()
    _check_clean(ws, head, commit, branch)
    target = Graph.build(ws.scripts_at_commit(commit, ref=branch).revisions)
    entering = branch if repo.is_branch(branch) else None
    here = repo.current_branch()
    with opened(ws, progress, dry_run=dry_run, trust_remembered=True) as s:
        if s.recovery is not None and s.recovery.checked_out:
            head, here = repo.head_commit(), repo.current_branch()
        req = MoveRequest(
            target=target,
            target_commit=commit,
            previous=head,
            checkout=branch,
            hint=here,
            entering=entering,
            dry_run=dry_run,
            snapshot=snapshot,
            terminate=terminate_connections,
            rehearse=rehearse,
        )
        return _move(s, req)


def _check_clean(ws: Workspace, head: str | None, commit: str, branch: str) -> None:
    dirty = ws.repo.dirty_paths()
    if not dirty:
        return
    watched = ws.project.watch_paths()
    own = set(ws.project.config_files())  # branchmig's config (an untracked alembic.ini)
    in_migrations = [
        p
        for p in dirty
        if p not in own and any(p == w or p.startswith(w.rstrip("/") + "/") for w in watched)
    ]
    if in_migrations:
        raise GitError(
            f"Uncommitted changes in the migrations ({', '.join(in_migrations[:3])}"
            f"{', …' if len(in_migrations) > 3 else ''}); commit or stash them, then run: "
            f"branchmig switch {branch}"
        )
    changed = ws.repo.changed_between(head, commit) if head else set()
    blocking = sorted(p for p in dirty if p in changed)
    if blocking:
        raise GitError(
            f"Uncommitted changes to {', '.join(blocking[:3])} would be overwritten by the "
            f"checkout of '{branch}'; commit or stash them first"
        )


def _move(s: Session, req: MoveRequest) -> MoveResult:
    """The pipeline: gather and decide, then (unless a dry run) execute; the result."""
    d = decide(s, req)
    if s.remembered and not d.plan.is_noop:
        raise _NeedsEnv  # before anything is touched or said
    before = s.db.heads
    result = MoveResult(
        database=s.masked,
        branch=req.entering,
        before=before,
        after=before,
        plan=d.plan,
        dry_run=req.dry_run,
        restored=d.restore.key if d.restore is not None else None,
        notes=tuple(s.notes),
        owner=d.owner.branch,
        recovered=s.recovery.describe() if s.recovery else None,
    )
    if req.dry_run:
        return result
    if req.rehearse is None:
        req = replace(req, rehearse=s.ws.project.settings.rehearse)
    if d.plan.is_noop and d.restore is None and d.snapshots.save is None:
        if req.checkout:
            s.ws.repo.checkout(req.checkout, env=SKIP_HOOK)
        record_applied(s, req.target, before)
        finish(s, req, before)
        return result
    after, d = carry_out(s, req, d)
    return replace(
        result,
        after=after,
        notes=tuple(dict.fromkeys(s.notes)),
        saved=d.snapshots.save if d.snapshots.keep else None,
    )
