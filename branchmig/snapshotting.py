"""``branchmig snapshot list | save | restore | drop | prune``: the snapshots of this
project's database, by hand. One typed function per command."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from branchmig.errors import SnapshotError, UsageError
from branchmig.lifecycle import snapshot_key
from branchmig.provenance import held_snapshots
from branchmig.session import Session, opened
from branchmig.session import quiet as _quiet
from branchmig.state import SnapshotRecord
from branchmig.status import snapshot_statuses
from branchmig.verify import drop_dead_scratches_of
from branchmig.workspace import WORKTREE, Workspace

Progress = Callable[[str], None]


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
    """This database's snapshots, newest first (the live database dropped, too)."""
    with opened(ws, progress, missing_ok=True) as s:
        if s.db.missing:
            progress(
                f"branchmig: the live database {s.masked} is missing on its server; make it "
                "again from a snapshot: branchmig snapshot restore KEY"
            )
        backend = s.backend()
        stored = {snap.key: (snap.size, snap.backend) for snap in backend.stored()}
        records = {r.key: r for r in s.state.snapshots() if r.database in s.dbid.keys}
        branches = set(ws.repo.branch_tips())
        infos = []
        for st in snapshot_statuses(ws, held_snapshots(s.state, s.dbid), stored):
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
    from branchmig.switching import _token

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
            key = snapshot_key(branch, _token())
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


def restore_snapshot(
    ws: Workspace, *, name: str, terminate: bool = False, progress: Progress = _quiet
) -> tuple[SnapshotRecord, str | None]:
    """Put snapshot ``name`` back as the database; what it replaces is saved first (the
    returned key; None when the live database was missing, then made again)."""
    from branchmig.switching import _token

    with opened(ws, progress, missing_ok=True) as s:
        record = _find(s, name)
        backend = s.backend(terminate=terminate)
        if not backend.exists(record.key):
            raise SnapshotError(
                f"Snapshot '{name}' is in the index but its copy is gone; "
                f"run: branchmig snapshot drop {name}"
            )
        if s.db.missing:
            s.env.dispose_engines()
            backend.restore(record.key)
            s.state.remove_snapshot(record.key)
            return record, None
        kept = f"replaced-{time.strftime('%Y%m%d-%H%M%S')}-{_token()[-4:]}"
        _, code = ws.graph_at(WORKTREE)
        s.env.dispose_engines()
        backend.restore(record.key, keep_current_as=kept)
        s.state.remove_snapshot(record.key)
        s.state.add_snapshot(
            SnapshotRecord(
                key=kept,
                branch=ws.repo.current_branch(),
                commit=ws.repo.head_commit(),
                heads=list(s.db.heads),
                database=s.dbkey,
                backend=backend.name,
                size=0,
                purpose="replaced",
            ),
            applied={
                r: code.revisions[r].blob
                for r in code.ancestors(s.db.heads, strict=False)
                if r in code
            },
        )
        return record, kept


def drop_snapshot(ws: Workspace, *, name: str, progress: Progress = _quiet) -> SnapshotRecord:
    with opened(ws, progress) as s:
        record = _find(s, name)
        s.backend().drop(record.key)
        s.state.remove_snapshot(record.key)
        return record


@dataclass(frozen=True)
class PruneResult:
    dropped: list[SnapshotInfo]
    kept_strays: list[SnapshotInfo]  # would have been dropped, but nothing else holds them
    scratches: list[str] = field(default_factory=list)  # of killed verify runs, dropped


def prune_snapshots(
    ws: Workspace,
    *,
    keep: int | None = None,
    older_than: float | None = None,
    strays: bool = False,
    dry_run: bool = False,
    progress: Progress = _quiet,
) -> PruneResult:
    """Drop the snapshots of branches that no longer exist, those older than
    ``older_than`` days, all but the ``keep`` newest, and index entries whose copy is
    gone. A snapshot no checkout would restore holds rows nothing else has: it is kept
    and named unless ``strays`` is given."""
    infos = list_snapshots(ws, progress=progress)
    now = time.time()
    doomed: list[SnapshotInfo] = []
    spared: list[SnapshotInfo] = []
    for index, info in enumerate(infos):
        gone = info.record.branch is not None and not info.branch_exists
        old = older_than is not None and now - info.record.created > older_than * 86400
        extra = keep is not None and index >= keep
        if not info.present:
            doomed.append(info)
        elif gone or old or extra:
            (doomed if strays or not info.stray else spared).append(info)
    if not dry_run and doomed:
        with opened(ws, progress) as s:
            backend = s.backend()
            for info in doomed:
                backend.drop(info.record.key)
                s.state.remove_snapshot(info.record.key)
    scratches: list[str] = []
    if strays and not dry_run:
        with opened(ws, progress) as s:
            if not s.dbid.url.startswith("sqlite"):
                scratches = drop_dead_scratches_of(s.dbid.url)
    return PruneResult(doomed, spared, scratches)


def _find(s: Session, name: str) -> SnapshotRecord:
    records = [r for r in s.state.snapshots() if r.database in s.dbid.keys]
    for record in records:
        if record.key == name:
            return record
    by_branch = [r for r in records if r.branch == name]
    if len(by_branch) == 1:
        return by_branch[0]
    known = ", ".join(r.key for r in records) or "none"
    raise SnapshotError(
        f"No snapshot '{name}' of this database (known: {known}); see: branchmig snapshot list"
    )


def _check_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9_-]{1,40}", name):
        raise UsageError(f"Snapshot name '{name}' must be 1-40 of a-z, 0-9, '-' and '_'")
    return name
