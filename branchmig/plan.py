"""From what the database has applied to what a target graph wants: a Plan. Pure.

A revision is *kept* when the target has the same id with the same script text and every
revision it needs is kept too. Everything else the database has is reverted, with the
scripts of the graph that applied it, every revision before those it needs; then what the
target wants and the database does not keep is applied in order. An id whose script
changed (edited, or rebased onto another ``down_revision``) is therefore reverted with its
old text and applied with its new one, with everything above it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from branchmig.downgrades import Destructive
from branchmig.errors import PlanError
from branchmig.graph import Graph, Revision


@dataclass(frozen=True)
class Plan:
    common: tuple[str, ...]
    downgrade: tuple[str, ...]
    upgrade: tuple[str, ...]
    changed: tuple[str, ...] = ()  # ids reverted and re-applied because their script changed
    destructive: tuple[Destructive, ...] = field(default=())
    # drop_column / alter_column outside batch mode in the downgrades it runs: SQLite
    # refuses them for an indexed or constrained column (seed 004's "near DROP").
    batch_needed: tuple[Destructive, ...] = field(default=())

    @property
    def is_noop(self) -> bool:
        return not self.downgrade and not self.upgrade


def make_plan(
    *,
    applied_heads: Sequence[str],
    source: Graph,
    target: Graph,
    target_heads: Sequence[str] | None = None,
) -> Plan:
    """The plan that moves a database at ``applied_heads`` (revisions of ``source``) to
    ``target_heads`` of ``target`` (default: all its heads). A cycle anywhere in
    ``target`` refuses the plan, as Alembic refuses to load it."""
    target.refuse_cycle()
    unknown = [h for h in applied_heads if h not in source]
    if unknown:
        raise PlanError(
            f"The database is at {', '.join(repr(u) for u in unknown)}, which no known "
            "script defines; run 'branchmig status' to see where it was last seen"
        )
    applied = source.ancestors(applied_heads)
    source.check(within=applied)
    heads = tuple(target.heads if target_heads is None else target_heads)
    wanted = target.ancestors(heads)
    target.check(within=wanted)

    # Only what the target heads need is kept: a revision the target graph has but the
    # requested heads do not need is reverted too, and so is everything built on one.
    revert = {r for r in applied if not _same_in(target, source.revisions[r], wanted)}
    if revert:
        needed_by: dict[str, list[str]] = {}
        for rev_id in applied:
            for parent in source.parents_of(rev_id):
                needed_by.setdefault(parent, []).append(rev_id)
        stack = list(revert)
        while stack:
            for child in needed_by.get(stack.pop(), ()):
                if child not in revert:
                    revert.add(child)
                    stack.append(child)
    kept = applied - revert
    downgrade = tuple(reversed(source.topological(revert)))
    upgrade = tuple(target.topological(wanted - kept))
    changed = tuple(
        r
        for r in downgrade
        if r in target and r in upgrade and target.revisions[r].blob != source.revisions[r].blob
    )
    return Plan(
        common=latest_common(kept, source), downgrade=downgrade, upgrade=upgrade, changed=changed
    )


def _same_in(target: Graph, old: Revision, wanted: AbstractSet[str]) -> bool:
    new = target.revisions.get(old.id)
    return (
        old.id in wanted
        and new is not None
        and new.blob == old.blob
        and new.down == old.down
        and new.depends_on == old.depends_on
    )


def latest_common(kept: Iterable[str], graph: Graph) -> tuple[str, ...]:
    """The revisions of ``kept`` that nothing else in ``kept`` needs."""
    kept = set(kept)
    needed = {p for r in kept for p in graph.parents_of(r)}
    latest = [r for r in kept if r not in needed]
    if len(latest) <= 1:
        return tuple(latest)
    return tuple(r for r in graph.topological(kept) if r not in needed)
