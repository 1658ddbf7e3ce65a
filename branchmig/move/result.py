"""What a move did, as a value."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from branchmig.plan import Plan

Progress = Callable[[str], None]


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
