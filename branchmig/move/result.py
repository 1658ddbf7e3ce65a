"""What a move did, as a value: a sync or a switch (``MoveResult``), a ``snapshot
restore`` (``RestoreResult``)."""

from __future__ import annotations

from dataclasses import dataclass

from branchmig.plan import Plan
from branchmig.state import SnapshotRecord


@dataclass(frozen=True)
class MoveResult:
    """What a sync or a switch did (or, with ``dry_run``, would do)."""

    database: str  # masked URL
    branch: str | None
    before: tuple[str, ...]
    after: tuple[str, ...]
    plan: Plan
    dry_run: bool = False
    saved: str | None = None  # snapshot key kept for the branch left
    restored: str | None = None  # snapshot key restored for the branch entered
    notes: tuple[str, ...] = ()
    owner: str | None = None  # the branch the database belonged to before the move
    recovered: str | None = None  # a killed move this call put back first, in words


@dataclass(frozen=True)
class RestoreResult:
    """What ``snapshot restore`` did."""

    database: str  # masked URL
    record: SnapshotRecord  # the snapshot restored, as the index held it
    before: tuple[str, ...]  # the live database's heads before (none when it was missing)
    replaced: str | None  # the key the database it replaced was kept under (None: missing)
    kept: bool  # the snapshot is still there, to be restored again
    notes: tuple[str, ...] = ()
    recovered: str | None = None  # a killed move this call put back first, in words
