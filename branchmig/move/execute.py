"""One journaled transaction: save (or restore), steps, checkout, and everything put back
when one fails; a revert that fails with one text of a changed script is tried again
with the next text git holds of it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from branchmig.errors import BranchmigError, MoveFailed, StepFailed
from branchmig.graph import Graph, Revision
from branchmig.lifecycle import Held, Text, next_text
from branchmig.move.applied import applied_key, record_applied
from branchmig.move.gather import Decided, decide
from branchmig.move.rehearse import rehearse
from branchmig.move.request import MoveRequest
from branchmig.move.rollback import name_the_fix, remember_failure, roll_back
from branchmig.move.steps import run_plan
from branchmig.provenance import candidate_texts
from branchmig.session import SKIP_HOOK, Session, finish_drops, worktree_name
from branchmig.state import Journal, Owner, SnapshotRecord

if TYPE_CHECKING:
    from branchmig.snapshots import SnapshotBackend


def carry_out(s: Session, req: MoveRequest, d: Decided) -> tuple[tuple[str, ...], Decided]:
    """Rehearse and execute ``d``. A revert that fails with a text of a changed script
    while the database was put back is tried again with the next text git holds of it
    (``lifecycle.next_text``); when none is left, the failure names the texts tried."""
    before = s.db.heads
    texts: dict[str, Revision] = {}
    tried: dict[str, list[Text]] = {}
    while True:
        said = len(s.notes)
        try:
            return _attempt(s, req, d), d
        except MoveFailed as err:
            again = _text_to_try(s, req, d, err, tried)
            if isinstance(again, Text):
                del s.notes[said:]  # "restored from snapshot": this attempt's, put back
                s.notes.append(
                    f"'{again.revision.id}' was reverted with its text {again.describe()}: "
                    "its script changed after that text migrated the database"
                )
                texts[again.revision.id] = again.revision
                d = decide(s, req, reverting_with=texts)
                continue
            err = again or err
            remember_failure(s, req, d, err, before=before)
            raise err from err.cause


def _text_to_try(
    s: Session, req: MoveRequest, d: Decided, err: MoveFailed, tried: dict[str, list[Text]]
) -> Text | MoveFailed | None:
    """After ``err``: the next text to revert its revision with (the database was put
    back, and git holds one not tried yet), else the failure naming the texts tried
    (None: not a failed revert)."""
    step = err.cause
    if not (isinstance(step, StepFailed) and step.direction == "downgrade" and err.restored):
        return None
    rev = d.source.revisions.get(step.revision)
    if rev is None or d.restore is not None:
        return None
    texts = candidate_texts(
        s.ws,
        s.state.applied(applied_key(s.state, s.dbid)),
        rev.id,
        previous=req.previous,
        target=req.target,
        target_is=f"'{req.checkout}'" if req.checkout else "the working tree",
    )
    used = next((t for t in texts if t.revision.blob == rev.blob), Text(rev, "branchmig's copy"))
    tried.setdefault(rev.id, []).append(used)
    after = next_text(texts, {t.revision.blob for t in tried[rev.id]})
    if after is not None:
        s.progress(
            f"branchmig: the downgrade of '{rev.id}' in its text {used.describe()} does not "
            f"fit the database (put back as it was); trying its text {after.describe()}"
        )
        return after
    if [t.where for t in tried[rev.id]] in (["branchmig's record"], ["branchmig's copy"]):
        return None  # the one text branchmig ran itself: a downgrade to fix, said as such
    tool = "flask db" if s.ws.project.kind == "flask" else "alembic"
    err.tried = tuple(t.describe() for t in tried[rev.id])
    err.then = (
        f"fix the downgrade of '{rev.id}' so that it fits the database and run it by hand "
        f"({tool} downgrade {rev.id}-1), then run: {req.again}"
    )
    return err


def _attempt(s: Session, req: MoveRequest, d: Decided) -> tuple[str, ...]:
    if req.rehearse and d.restore is None:
        rehearse(s, req, d)
    elif req.rehearse:
        s.notes.append(
            "not rehearsed: the entering branch's snapshot is restored first, and "
            "a failure after it puts both databases back"
        )
    return execute(s, req, d)


def finish(s: Session, req: MoveRequest, heads: tuple[str, ...]) -> None:
    """The database now belongs to the branch entered, at ``heads``."""
    repo = s.ws.repo
    owner = Owner(req.entering, req.target_commit, heads, reflog=repo.reflog_size())
    s.state.set_owner(s.dbkey, owner)
    s.state.set_suspect(s.dbkey, None)
    s.state.note_left_on(worktree_name(s.ws), req.entering)
    s.state.set_failure(s.dbkey, None)


def execute(s: Session, req: MoveRequest, d: Decided) -> tuple[str, ...]:
    """Carry out the decision under the journal: all or nothing when a snapshot is taken."""
    state, plan, snaps = s.state, d.plan, d.snapshots
    backend = s.backend(terminate=req.terminate) if snaps.save else None
    journal = _journal_for(s, req, d)
    state.write_journal(journal)
    source = d.source
    try:
        failpoint("journal")
        if backend is not None and snaps.save is not None:
            source = _save(s, req, d, backend, journal, snaps.save)
        journal.phase = "migrating"
        state.write_journal(journal)

        def on_start(direction: str, revision: str) -> None:
            if backend is None:  # with a snapshot, a kill restores it instead
                journal.in_flight = [direction, revision]
                state.write_journal(journal, durable=False)
            failpoint("step")

        after = run_plan(
            s,
            plan,
            source,
            req.target,
            between=_checkout(s, req, journal),
            on_start=on_start,
            old_commits=(req.previous, d.owner.commit, req.target_commit),
        )
        failpoint("migrated")
    except BaseException as err:
        fix = name_the_fix(s, d, req.target, err)
        failure = roll_back(s, backend, journal, req.checkout, err, fix=fix)
        if failure is None:
            raise
        raise failure from err
    _done(s, req, d, backend, journal, after)
    return after


def _journal_for(s: Session, req: MoveRequest, d: Decided) -> Journal:
    # A switch checks out again what it found checked out (its hint is that branch and
    # its previous commit that HEAD); a sync's recovery gives the database to its owner.
    restore = d.restore
    return Journal(
        operation=req.operation,
        pid=os.getpid(),
        started=time.time(),
        database=s.dbkey,
        from_commit=req.previous if req.checkout else d.owner.commit,
        from_branch=req.hint if req.checkout else d.owner.branch,
        to=req.to,
        safety_snapshot=d.snapshots.save,
        restored_snapshot=restore.key if restore is not None else None,
        to_commit=req.target_commit,
        to_branch=req.entering,
    )


def _checkout(s: Session, req: MoveRequest, journal: Journal) -> Callable[[], None] | None:
    """A switch's checkout, run between the revert and the upgrade."""
    checkout = req.checkout
    if checkout is None:
        return None

    # _check_clean refused dirty or untracked migrations: after the checkout the tree
    # holds exactly the target commit's scripts.
    def between() -> None:
        s.ws.repo.checkout(checkout, env=SKIP_HOOK)
        journal.checked_out = True
        s.state.write_journal(journal)
        failpoint("checked-out")

    return between


def _save(
    s: Session,
    req: MoveRequest,
    d: Decided,
    backend: SnapshotBackend,
    journal: Journal,
    key: str,
) -> Graph:
    """The database left saved (or kept aside by the entering branch's restore), under
    the journal; the graph the steps then start from."""
    snaps, restore, before = d.snapshots, d.restore, s.db.heads
    source = d.source
    s.env.dispose_engines()
    leaving = d.owner.branch or "HEAD"
    if restore is not None:
        s.progress(f"branchmig: restoring the snapshot of '{req.entering}'")
        backend.restore(restore.key, keep_current_as=key)
        # Said once it is true: a restore that fails leaves no such copy.
        s.progress(f"branchmig: kept the database of '{leaving}' as '{key}'")
        s.db = s.db.with_heads(restore.heads)
        source = req.target
    else:
        s.progress(f"branchmig: saving the database of '{leaving}' as snapshot '{key}'")
        backend.save(key)
    s.state.add_snapshot(
        SnapshotRecord(
            key=key,
            branch=d.owner.branch,
            commit=d.owner.commit,
            heads=list(before),
            database=s.dbkey,
            backend=backend.name,
            size=_size(backend, key),
            purpose="branch" if snaps.keep else "safety",
        ),
        applied=d.applied,
    )
    journal.phase = "saved"
    s.state.write_journal(journal)
    failpoint("saved")
    if restore is not None and snaps.resave is not None:
        _resave(s, restore, backend, journal, snaps.resave)
    return source


def _resave(
    s: Session, restore: Held, backend: SnapshotBackend, journal: Journal, key: str
) -> None:
    """What arrived on the branch since is applied next: keep the snapshot's content
    until that worked, so a failure loses neither database."""
    backend.save(key)
    s.state.add_snapshot(
        SnapshotRecord(
            key=key,
            branch=restore.branch,
            commit=restore.commit,
            heads=list(restore.heads),
            database=s.dbkey,
            backend=backend.name,
            size=_size(backend, key),
            purpose=restore.purpose,
        ),
        applied=dict(restore.applied or {}),
    )
    journal.resaved_snapshot = key
    s.state.write_journal(journal)
    failpoint("resaved")


def _done(
    s: Session,
    req: MoveRequest,
    d: Decided,
    backend: SnapshotBackend | None,
    journal: Journal,
    after: tuple[str, ...],
) -> None:
    """From here a kill finishes the move rather than undoing it."""
    snaps, restore = d.snapshots, d.restore
    if backend is not None:
        journal.drops = [*snaps.replaces]
        if restore is not None and snaps.resave is not None:
            journal.drops.append(snaps.resave)
        if snaps.save is not None and not snaps.keep:
            journal.drops.append(snaps.save)
    journal.phase = "done"
    s.state.write_journal(journal, durable=False)
    failpoint("done")
    if backend is not None:
        finish_drops(backend, s.state, journal)
    restored = restore.applied or {} if restore is not None else {}
    record_applied(s, req.target, after, ran=(*d.plan.upgrade, *restored))
    finish(s, req, after)
    s.state.clear_journal()


def failpoint(name: str) -> None:
    """Where the fault-injection tests stop a move: ``BRANCHMIG_FAILPOINT=NAME`` raises
    there, ``NAME:kill`` kills the process as ``kill -9`` would. Points: journal, saved,
    resaved, checked-out, step (each migration step), migrated, done; ``snapshot
    restore`` (``move.restore``) has journal, restored, saved, resaved and done."""
    wanted = os.environ.get("BRANCHMIG_FAILPOINT")
    if not wanted or wanted.partition(":")[0] != name:
        return
    if wanted.endswith(":kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    raise BranchmigError(f"injected fault at '{name}'")


def _size(backend: SnapshotBackend, key: str) -> int:
    for stored in backend.stored():
        if stored.key == key:
            return stored.size
    return 0
