"""``snapshot restore`` as a move: a ``RestoreRequest``, gathered (the snapshot named and
its copy, the live database and what it holds), decided by ``lifecycle.decide_restore``,
executed under the journal every move keeps, and a ``RestoreResult``.

The journal names the copy of the live database as the move's safety snapshot and the
snapshot as the one restored, so a kill anywhere is ended by the next command as any
move's is (``session.recover``): before "done", that copy is restored over the live
database and the snapshot, if the restore used it up, kept again under its key; at
"done", a snapshot used up is forgotten. With the live database missing from its server
there is no copy: a restore that made it again is finished. Where the fault-injection
tests stop it (``execute.failpoint``): journal, restored (the live database holds the
snapshot; the copy of what it replaced is not indexed yet), saved (it is), resaved (the
snapshot saved again to be kept), done."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from branchmig.errors import SnapshotError
from branchmig.lifecycle import RestoreDecision, decide_restore
from branchmig.move.execute import failpoint
from branchmig.move.gather import token
from branchmig.move.request import RestoreRequest
from branchmig.move.result import RestoreResult
from branchmig.move.rollback import roll_back
from branchmig.process import Progress
from branchmig.provenance import blobs_of, find_snapshot
from branchmig.session import Session, finish_drops, opened, quiet
from branchmig.state import Journal, SnapshotRecord
from branchmig.workspace import WORKTREE, Workspace

if TYPE_CHECKING:
    from branchmig.snapshots import SnapshotBackend


@dataclass(frozen=True)
class Restoring:
    """What a restore is decided on, and the decision."""

    record: SnapshotRecord  # the snapshot named, as the index holds it
    decision: RestoreDecision
    replaced: SnapshotRecord | None  # the live database's entry, once it is kept
    applied: dict[str, str]  # what the live database holds: revision -> blob


def restore(ws: Workspace, req: RestoreRequest, *, progress: Progress = quiet) -> RestoreResult:
    """Put back the snapshot ``req`` names as the database; what it replaces is kept
    first, as a snapshot of its own. A live database dropped from its server is made
    again from the snapshot."""
    with opened(ws, progress, missing_ok=True) as s:
        backend = s.backend(terminate=req.terminate)
        g = gather(s, req, backend)
        kept = execute(s, g, backend)
        return RestoreResult(
            database=s.masked,
            record=g.record,
            before=s.db.heads,
            replaced=g.decision.replaced,
            kept=kept,
            notes=tuple(s.notes),
            recovered=s.recovery.describe() if s.recovery else None,
        )


def gather(s: Session, req: RestoreRequest, backend: SnapshotBackend) -> Restoring:
    """The snapshot and its copy, the live database (what it holds, by the working
    tree's scripts), and what ``lifecycle`` decides of them."""
    record = find_snapshot(s.state, s.dbid, req.name)
    if not backend.exists(record.key):
        raise SnapshotError(
            f"Snapshot '{req.name}' is in the index but its copy is gone; "
            f"run: branchmig snapshot drop {req.name}"
        )
    decision = decide_restore(
        key=record.key,
        purpose=record.purpose,
        keep=req.keep,
        live_missing=s.db.missing,
        stamp=f"{time.strftime('%Y%m%d-%H%M%S')}-{token()[-4:]}",
    )
    if decision.replaced is None:
        return Restoring(record, decision, None, {})
    repo, heads = s.ws.repo, s.db.heads
    _, code = s.ws.graph_at(WORKTREE)
    replaced = SnapshotRecord(
        key=decision.replaced,
        branch=repo.current_branch(),
        commit=repo.head_commit(),
        heads=list(heads),
        database=s.dbkey,
        backend=backend.name,
        size=0,
        purpose="replaced",
    )
    held = blobs_of(code, tuple(code.ancestors(heads, strict=False)))
    return Restoring(record, decision, replaced, held)


def execute(s: Session, g: Restoring, backend: SnapshotBackend) -> bool:
    """Carry out ``g`` under the journal: the live database kept and the snapshot made
    live, both put back as they were if anything fails before it is done. Whether the
    snapshot is kept."""
    d = g.decision
    journal = Journal(
        operation=RestoreRequest.operation,
        pid=os.getpid(),
        started=time.time(),
        database=s.dbkey,
        from_commit=None,
        from_branch=None,
        to=d.key,
        safety_snapshot=d.replaced,
        restored_snapshot=d.key,
        keep_restored=d.keep,
    )
    s.state.write_journal(journal)
    made = False  # the live database holds the snapshot
    unkept: SnapshotError | None = None
    try:
        failpoint("journal")
        s.env.dispose_engines()
        backend.restore(d.key, keep_current_as=d.replaced)
        made = True
        failpoint("restored")
        if g.replaced is not None:
            s.state.add_snapshot(g.replaced, applied=g.applied)
        journal.phase = "saved"
        s.state.write_journal(journal)
        failpoint("saved")
        if d.keep:
            unkept = _resave(s, g.record, backend, journal)
    except BaseException as err:
        if made and d.replaced is None:  # nothing to put back: the restore stands
            _done(s, backend, journal)
            raise
        failure = roll_back(s, backend, journal, None, err)
        if failure is None or (not made and failure.restore_failed is None):
            raise  # nothing was touched: the error as it came
        raise failure from err
    _done(s, backend, journal)
    if unkept is not None:
        raise unkept
    return d.keep


def _resave(
    s: Session, record: SnapshotRecord, backend: SnapshotBackend, journal: Journal
) -> SnapshotError | None:
    """The snapshot saved again from the restored database, under its own key, to be
    returned to; the error to raise once the restore is done when it could not be (the
    database holds its rows, the snapshot is used up)."""
    try:
        stored = backend.save(record.key)
    except SnapshotError as err:
        unkept = SnapshotError(
            f"Restored '{record.key}', but could not keep a copy of it: {err}; the "
            f"database holds its rows, save them again with: branchmig snapshot "
            f"save {record.key}"
        )
        unkept.__cause__ = err
        return unkept
    applied = s.state.snapshot_applied(record.key) or {}
    s.state.add_snapshot(replace(record, size=stored.size), applied=applied)
    journal.resaved_snapshot = record.key
    s.state.write_journal(journal)
    failpoint("resaved")
    return None


def _done(s: Session, backend: SnapshotBackend, journal: Journal) -> None:
    """From here a kill finishes the restore rather than undoing it: the snapshot used
    up is forgotten (one saved again under its key stays)."""
    journal.phase = "done"
    s.state.write_journal(journal, durable=False)
    failpoint("done")
    finish_drops(backend, s.state, journal)
    s.state.clear_journal()
