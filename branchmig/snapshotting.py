"""``branchmig snapshot list | save | restore | drop | prune``: the snapshots of this
project's database, by hand. One typed function per command."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from branchmig.errors import SnapshotError, UsageError
from branchmig.snapshots import backend_for_url
from branchmig.state import SnapshotRecord
from branchmig.switching import _Context, _opened
from branchmig.workspace import WORKTREE, Workspace

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class SnapshotInfo:
    record: SnapshotRecord
    present: bool  # the backend still holds it
    branch_exists: bool


def list_snapshots(ws: Workspace, *, progress: Progress = _quiet) -> list[SnapshotInfo]:
    """This database's snapshots, newest first."""
    with _opened(ws, progress) as ctx:
        backend = backend_for_url(ctx.db.url, store_dir=ctx.state.snapshot_dir)
        stored = {s.key: s for s in backend.stored()}
        branches = set(ws.repo.branches())
        infos = []
        for record in ctx.state.snapshots():
            if record.database != ctx.dbkey:
                continue
            held = stored.get(record.key)
            if held is not None:
                record = replace(record, size=held.size)
            infos.append(SnapshotInfo(record, held is not None,
                                      record.branch is not None and record.branch in branches))
        return sorted(infos, key=lambda i: -i.record.created)


def save_snapshot(ws: Workspace, *, name: str | None = None, terminate: bool = False,
                  progress: Progress = _quiet) -> SnapshotRecord:
    """Save the database now, as ``name`` (default: the current branch's snapshot)."""
    from branchmig.switching import _branch_key

    with _opened(ws, progress) as ctx:
        branch = ws.repo.current_branch()
        key = _check_name(name) if name else _branch_key(ctx.dbkey, branch)
        backend = backend_for_url(ctx.db.url, store_dir=ctx.state.snapshot_dir,
                                  terminate_connections=terminate, progress=progress)
        _, code = ws.graph_at(WORKTREE)
        ctx.env.dispose_engines()
        stored = backend.save(key)
        applied = code.ancestors(ctx.db.heads, strict=False)
        record = SnapshotRecord(
            key=key, branch=branch, commit=ws.repo.head_commit(), heads=list(ctx.db.heads),
            database=ctx.dbkey, backend=backend.name, size=stored.size,
            purpose="branch" if not name else "manual")
        ctx.state.add_snapshot(record, applied={r: code.revisions[r].blob for r in applied})
        return record


def restore_snapshot(ws: Workspace, *, name: str, terminate: bool = False,
                     progress: Progress = _quiet) -> tuple[SnapshotRecord, str]:
    """Put snapshot ``name`` back as the database; what it replaces is saved first (the
    returned key)."""
    with _opened(ws, progress) as ctx:
        record = _find(ctx, name)
        backend = backend_for_url(ctx.db.url, store_dir=ctx.state.snapshot_dir,
                                  terminate_connections=terminate, progress=progress)
        if not backend.exists(record.key):
            raise SnapshotError(f"Snapshot '{name}' is in the index but its copy is gone; "
                                f"run: branchmig snapshot drop {name}")
        kept = f"replaced-{time.strftime('%Y%m%d-%H%M%S')}"
        _, code = ws.graph_at(WORKTREE)
        ctx.env.dispose_engines()
        backend.restore(record.key, keep_current_as=kept)
        ctx.state.remove_snapshot(record.key)
        ctx.state.add_snapshot(SnapshotRecord(
            key=kept, branch=ws.repo.current_branch(), commit=ws.repo.head_commit(),
            heads=list(ctx.db.heads), database=ctx.dbkey, backend=backend.name, size=0,
            purpose="replaced"),
            applied={r: code.revisions[r].blob
                     for r in code.ancestors(ctx.db.heads, strict=False)})
        return record, kept


def drop_snapshot(ws: Workspace, *, name: str, progress: Progress = _quiet) -> SnapshotRecord:
    with _opened(ws, progress) as ctx:
        record = _find(ctx, name)
        backend_for_url(ctx.db.url, store_dir=ctx.state.snapshot_dir).drop(record.key)
        ctx.state.remove_snapshot(record.key)
        return record


def prune_snapshots(ws: Workspace, *, keep: int | None = None, older_than: float | None = None,
                    dry_run: bool = False, progress: Progress = _quiet) -> list[SnapshotInfo]:
    """Drop the snapshots of branches that no longer exist, those older than
    ``older_than`` days, and all but the ``keep`` newest; returns what was (or would be)
    dropped."""
    infos = list_snapshots(ws, progress=progress)
    now = time.time()
    doomed = []
    for index, info in enumerate(infos):
        gone = info.record.branch is not None and not info.branch_exists
        old = older_than is not None and now - info.record.created > older_than * 86400
        extra = keep is not None and index >= keep
        if gone or old or extra or not info.present:
            doomed.append(info)
    if dry_run or not doomed:
        return doomed
    with _opened(ws, progress) as ctx:
        backend = backend_for_url(ctx.db.url, store_dir=ctx.state.snapshot_dir)
        for info in doomed:
            backend.drop(info.record.key)
            ctx.state.remove_snapshot(info.record.key)
    return doomed


def _find(ctx: _Context, name: str) -> SnapshotRecord:
    records = [r for r in ctx.state.snapshots() if r.database == ctx.dbkey]
    for record in records:
        if record.key == name:
            return record
    by_branch = [r for r in records if r.branch == name]
    if len(by_branch) == 1:
        return by_branch[0]
    known = ", ".join(r.key for r in records) or "none"
    raise SnapshotError(f"No snapshot '{name}' of this database (known: {known}); "
                        "see: branchmig snapshot list")


def _check_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9_-]{1,40}", name):
        raise UsageError(f"Snapshot name '{name}' must be 1-40 of a-z, 0-9, '-' and '_'")
    return name

