"""What was asked of a move: one value instead of the same keywords threaded through
every stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from branchmig.graph import Graph


@dataclass(frozen=True)
class MoveRequest:
    """A sync (``checkout`` None: the database follows the working tree) or a switch
    (``checkout``: the branch git checks out in the middle of the move)."""

    target: Graph  # the scripts the database is brought to
    target_commit: str | None
    previous: str | None  # the commit the database followed (the hook's PREV)
    checkout: str | None  # a switch's branch
    hint: str | None  # the branch left, when the caller knows it
    entering: str | None  # the branch entered (None: detached)
    dry_run: bool = False
    snapshot: bool | None = None  # None: as the project's settings say
    terminate: bool = False  # end other sessions that block a snapshot
    rehearse: bool | None = None  # None: as the project's settings say

    @property
    def operation(self) -> str:
        return "switch" if self.checkout else "sync"

    @property
    def to(self) -> str:
        """The move's destination, in words (the journal's and status's ``to``)."""
        return self.checkout or self.entering or "the working tree"

    @property
    def again(self) -> str:
        """The command that runs this move again."""
        return f"branchmig switch {self.checkout}" if self.checkout else "branchmig sync"


@dataclass(frozen=True)
class RestoreRequest:
    """``snapshot restore``: snapshot ``name`` (a key, or a branch with one snapshot) made
    the live database. Its own value rather than a ``MoveRequest``: it has no target
    scripts, plan or checkout, and gives the database to no branch (its owner stays)."""

    name: str
    keep: bool | None = None  # None: as ``lifecycle.decide_restore`` says for its purpose
    terminate: bool = False  # end other sessions that block the restore

    operation: ClassVar[str] = "restore"  # the journal's word for it
