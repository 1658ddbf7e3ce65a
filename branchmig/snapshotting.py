"""``branchmig snapshot list | save | drop | prune``: the snapshots of this project's
database, by hand. One typed function per command; ``snapshot restore`` is a move
(``branchmig.move.restore``)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace

from branchmig.errors import UsageError
from branchmig.lifecycle import snapshot_key
from branchmig.move.gather import token
from branchmig.process import Progress
from branchmig.provenance import find_snapshot, held_snapshots
from branchmig.session import backend_of, opened, recall, surveyed
from branchmig.session import quiet as _quiet
from branchmig.snapshots.base import StoredSnapshot
from branchmig.state import DatabaseId, SnapshotRecord, State
from branchmig.status import snapshot_statuses
from branchmig.verify import drop_dead_scratches_of
from branchmig.workspace import WORKTREE, Workspace


@dataclass(frozen=True)
class SnapshotInfo:
    record: SnapshotRecord
    present: bool  # the backend still holds it
    branch_exists: bool
    restored_by: tuple[str, ...] = ()  # the branches whose checkout would restore it

    @property
    def stray(self) -> bool:
        """No checkout will ever restore it: only ``snapshot restore`` brings it back."""
        return self.present and not self.restored_by


def list_snapshots(ws: Workspace, *, progress: Progress = _quiet) -> list[SnapshotInfo]:
    """This database's snapshots, newest first (the live database dropped, too). Read as
    ``status`` reads them: the remembered database when env.py would give the same one
    (no Alembic loaded), one question to the server for every copy, a fixed number of git
    runs."""
    state = State(ws.state_dir)
    quiet_journal = state.read_journal() is None
    found = surveyed(ws, state) if quiet_journal else None
    if found is not None:
        return _infos(ws, state, found[1], list(found[2].snapshots))
    known = recall(ws, state) if quiet_journal else None
    if known is None:
        with opened(ws, progress, missing_ok=True) as s:
            if s.db.missing:
                progress(
                    f"branchmig: the live database {s.masked} is missing on its server; make "
                    "it again from a snapshot: branchmig snapshot restore KEY"
                )
            return _infos(ws, s.state, s.dbid, s.backend().stored())
    db, dbid = known
    return _infos(ws, state, dbid, backend_of(db, state).stored())


def _infos(
    ws: Workspace, state: State, dbid: DatabaseId, copies: list[StoredSnapshot]
) -> list[SnapshotInfo]:
    stored = {snap.key: (snap.size, snap.backend) for snap in copies}
    records = {r.key: r for r in state.snapshots() if r.database in dbid.keys}
    branches = set(ws.repo.branch_tips())
    infos = []
    for st in snapshot_statuses(ws, held_snapshots(state, dbid), stored):
        record = records[st.held.key]
        if st.present:
            record = replace(record, size=st.size)
        infos.append(
            SnapshotInfo(
                record,
                st.present,
                record.branch is not None and record.branch in branches,
                st.restored_by,
            )
        )
    return infos


def save_snapshot(
    ws: Workspace, *, name: str | None = None, terminate: bool = False, progress: Progress = _quiet
) -> SnapshotRecord:
    """Save the database now, as ``name`` (default: the current branch's snapshot)."""
    with opened(ws, progress) as s:
        branch = ws.repo.current_branch()
        if name:
            key = _check_name(name)
            if any(r.key == key for r in s.state.snapshots()):
                raise UsageError(
                    f"There is a snapshot '{key}' already; choose another name "
                    f"or drop it first: branchmig snapshot drop {key}"
                )
        else:
            key = snapshot_key(branch, token())
        backend = s.backend(terminate=terminate)
        _, code = ws.graph_at(WORKTREE)
        s.env.dispose_engines()
        stored = backend.save(key)
        applied = code.ancestors(s.db.heads, strict=False)
        record = SnapshotRecord(
            key=key,
            branch=branch,
            commit=ws.repo.head_commit(),
            heads=list(s.db.heads),
            database=s.dbkey,
            backend=backend.name,
            size=stored.size,
            purpose="branch" if not name else "manual",
        )
        s.state.add_snapshot(record, applied={r: code.revisions[r].blob for r in applied})
        return record


def drop_snapshot(ws: Workspace, *, name: str, progress: Progress = _quiet) -> SnapshotRecord:
    with opened(ws, progress) as s:
        record = find_snapshot(s.state, s.dbid, name)
        s.backend().drop(record.key)
        s.state.remove_snapshot(record.key)
        return record


@dataclass(frozen=True)
class PruneResult:
    dropped: list[SnapshotInfo]
    kept_restorable: list[SnapshotInfo]  # asked for, but a checkout restores it
    kept_saved: list[SnapshotInfo]  # a named save no checkout restores: plain prune keeps it
    scratches: list[str] = field(default_factory=list)  # of killed verify runs, dropped


def prune_snapshots(
    ws: Workspace,
    *,
    keep: int | None = None,
    older_than: float | None = None,
    include_restorable: bool = False,
    dry_run: bool = False,
    progress: Progress = _quiet,
) -> PruneResult:
    """Drop what the options select, never a snapshot a checkout would restore (the
    ``restored_by`` that ``status`` shows) unless ``include_restorable``:

    - no option: the strays, the snapshots no checkout restores (their branch deleted or
      its scripts changed, and no other branch holding their commit), but for those saved
      by name (``snapshot save NAME``);
    - ``keep``: all but the ``keep`` newest; ``older_than``: those older than that many
      days (both: either); named saves included, restorable ones spared.

    Index entries whose copy is gone are always dropped: nothing is lost with them."""
    if include_restorable and keep is None and older_than is None:
        raise UsageError(
            "--include-restorable drops the snapshots checkouts restore: say which with "
            "--keep N or --older-than DAYS, or drop one by name: branchmig snapshot drop KEY"
        )
    infos = list_snapshots(ws, progress=progress)
    chosen = _chosen(infos, keep=keep, older_than=older_than)
    doomed: list[SnapshotInfo] = []
    restorable: list[SnapshotInfo] = []
    saved: list[SnapshotInfo] = []
    for info in infos:
        if not info.present:
            doomed.append(info)
        elif info.record.key not in chosen:
            continue
        elif info.restored_by and not include_restorable:
            restorable.append(info)
        elif keep is None and older_than is None and info.record.purpose == "manual":
            saved.append(info)
        else:
            doomed.append(info)
    if not dry_run and doomed:
        with opened(ws, progress) as s:
            backend = s.backend()
            for info in doomed:
                if info.present:
                    backend.drop(info.record.key)
                s.state.remove_snapshot(info.record.key)
    scratches: list[str] = []
    if not dry_run and keep is None and older_than is None:
        with opened(ws, progress) as s:
            if not s.dbid.url.startswith("sqlite"):
                scratches = drop_dead_scratches_of(s.dbid.url)
    return PruneResult(doomed, restorable, saved, scratches)


def _chosen(infos: list[SnapshotInfo], *, keep: int | None, older_than: float | None) -> set[str]:
    """The keys the options select (all of them when neither is given); ``infos``
    newest first."""
    if keep is None and older_than is None:
        return {i.record.key for i in infos}
    now = time.time()
    return {
        info.record.key
        for index, info in enumerate(infos)
        if (keep is not None and index >= keep)
        or (older_than is not None and now - info.record.created > older_than * 86400)
    }


def _check_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9_-]{1,40}", name):
        raise UsageError(f"Snapshot name '{name}' must be 1-40 of a-z, 0-9, '-' and '_'")
    return name
