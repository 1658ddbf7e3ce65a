"""A failed move put back (the database from its safety snapshot, a checkout undone) and
said: what became of the database, what to fix, and what status shows later."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from branchmig.downgrades import fix_for_failure
from branchmig.errors import (
    BranchmigError,
    GitError,
    MoveFailed,
    NotAsRemembered,
    PlanError,
    StepFailed,
)
from branchmig.graph import Graph
from branchmig.move.applied import script_text
from branchmig.move.gather import Decided, heads_now
from branchmig.move.request import MoveRequest
from branchmig.session import SKIP_HOOK, Session, put_back
from branchmig.state import Failure, Journal

if TYPE_CHECKING:
    from branchmig.snapshots import SnapshotBackend


def roll_back(
    s: Session,
    backend: SnapshotBackend | None,
    journal: Journal,
    checkout: str | None,
    err: BaseException,
    fix: str | None = None,
) -> MoveFailed | None:
    """Put the database (and a checkout we made) back as they were, and say what became
    of it: the error to raise instead of ``err`` (None for one that is not branchmig's,
    an interrupt say, which goes up as it is)."""
    rolled_back = False
    if backend is not None:
        try:
            rolled_back = put_back(backend, s.state, journal, s.env.dispose_engines)
        except BranchmigError as restore_err:
            s.state.clear_journal()
            return MoveFailed(
                err,
                restored=False,
                restore_failed=str(restore_err),
                snapshot=journal.safety_snapshot,
            )
        if rolled_back:
            s.notes.append(f"the database was restored from snapshot '{journal.safety_snapshot}'")
    if (journal.phase == "start" or isinstance(err, NotAsRemembered)) and not rolled_back:
        rolled_back = True  # nothing had touched the database yet
    _undo_checkout(s, journal, checkout, rolled_back)
    s.state.clear_journal()
    if not isinstance(err, BranchmigError):
        return None
    return _failure(s, journal, checkout, err, rolled_back, fix)


def _undo_checkout(s: Session, journal: Journal, checkout: str | None, rolled_back: bool) -> None:
    back = journal.from_branch or journal.from_commit
    if journal.checked_out and checkout is not None and rolled_back and back:
        with contextlib.suppress(GitError):
            s.ws.repo.checkout(back, env=SKIP_HOOK)
    elif checkout is not None and not journal.checked_out and journal.from_commit:
        # git's checkout itself failed or was interrupted (Ctrl-C reaches git too): what
        # it had written of the target goes back, HEAD never having moved.
        with contextlib.suppress(GitError):
            if journal.to_commit and s.ws.repo.head_commit() == journal.from_commit:
                s.ws.repo.undo_partial_checkout(journal.from_commit, journal.to_commit, since=None)


def _failure(
    s: Session,
    journal: Journal,
    checkout: str | None,
    err: BranchmigError,
    rolled_back: bool,
    fix: str | None,
) -> MoveFailed:
    """The error a failed move raises: where the database was left and what to do."""
    heads = then = half = earlier = None
    if not rolled_back and journal.phase == "migrating":
        heads = heads_now(s)
        again = (
            "branchmig sync"
            if journal.checked_out or checkout is None
            else f"branchmig switch {checkout}"
        )
        then = f"fix the script, then run: {again}"

        if isinstance(err, StepFailed) and err.direction == "downgrade":
            # Reverted with the text that applied it: a fixed file is not what runs.
            tool = "flask db" if s.ws.project.kind == "flask" else "alembic"
            then = (
                f"branchmig reverts '{err.revision}' with the script that applied it, so fix "
                f"its downgrade and run it by hand ({tool} downgrade {err.revision}-1), then "
                f"run: {again}"
            )
        half = journal.in_flight[1] if journal.in_flight else None
    suspect = s.state.suspect(s.dbkey)
    if suspect is not None and not rolled_back:
        earlier = (
            f"an earlier {suspect.operation} was killed while it ran the "
            f"{suspect.direction} of '{suspect.revision}', which may be half made"
        )
    return MoveFailed(
        err,
        restored=rolled_back,
        heads=heads,
        half_made=half,
        then=then,
        fix=fix,
        earlier_suspect=earlier,
    )


def name_the_fix(s: Session, d: Decided, target: Graph, err: BaseException) -> str | None:
    """A SQLite migration that failed on a column SQLite would not drop or alter in
    place (by SQLite's own message): what to change, in the revision's own file."""
    if not (isinstance(err, StepFailed) and s.db.on_sqlite):
        return None
    graph = d.source if err.direction == "downgrade" else target
    rev = graph.revisions.get(err.revision)
    if rev is None:
        return None
    try:
        text = script_text(s.ws, s.state, rev)
    except PlanError:
        return None
    return fix_for_failure(text, rev.id, err.direction, err.cause, rev.path)


def remember_failure(
    s: Session, req: MoveRequest, d: Decided, err: MoveFailed, *, before: tuple[str, ...]
) -> None:
    """Keep what ``status`` needs to name a failed step and its fix after this process
    is gone (the hook's message scrolls away)."""
    step = err.cause
    if not isinstance(step, StepFailed):
        return
    graph = d.source if step.direction == "downgrade" else req.target
    rev = graph.revisions.get(step.revision)
    if err.restored or err.rehearsal:
        heads = before
    else:
        heads = err.heads if err.heads is not None else heads_now(s)
    with contextlib.suppress(BranchmigError):  # the failure itself is what to report
        s.state.set_failure(
            s.dbkey,
            Failure(
                operation=req.operation,
                to=req.to,
                direction=step.direction,
                revision=step.revision,
                path=rev.path if rev is not None else "",
                blob=rev.blob if rev is not None else "",
                cause=step.cause,
                fix=err.fix,
                heads=tuple(heads),
                restored=err.restored,
                rehearsal=err.rehearsal,
                half_made=err.half_made,
                at=time.time(),
            ),
        )
