"""A move rendered (``switch``, ``sync``, the hook, ``merge-heads``, ``snapshot
restore``): text, JSON, and the hook's lines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from branchmig.reports.analysis import plan_text

if TYPE_CHECKING:
    from branchmig.merge import MergeOutcome
    from branchmig.move.result import MoveResult, RestoreResult


def move_json(result: MoveResult) -> dict[str, Any]:
    p = result.plan
    return {
        "database": result.database,
        "branch": result.branch,
        "dry_run": result.dry_run,
        "before": list(result.before),
        "after": list(result.after),
        "common": list(p.common),
        "downgrade": list(p.downgrade),
        "upgrade": list(p.upgrade),
        "changed": list(p.changed),
        "destructive": [
            {
                "revision": d.revision,
                "operation": d.operation,
                "target": d.target,
                "direction": d.direction,
            }
            for d in p.destructive
        ],
        "snapshot_saved": result.saved,
        "snapshot_restored": result.restored,
        "owner": result.owner,
        "recovered": result.recovered,
        "notes": list(result.notes),
    }


def move_text(result: MoveResult, *, what: str) -> tuple[list[str], list[str]]:
    """The lines for standard output, and the notes for standard error."""
    notes = [f"note: {result.recovered}"] if result.recovered else []
    notes += [f"note: {note}" for note in result.notes]
    return _dry_run(result, what) if result.dry_run else _done(result), notes


def _dry_run(result: MoveResult, what: str) -> list[str]:
    p = result.plan
    lines = [
        f"Dry run: {what} would change nothing in {result.database}."
        if p.is_noop and not result.restored
        else f"Dry run: {what} on {result.database}"
    ]
    if result.restored:
        lines.append(f"  restore snapshot: {result.restored}")
    if not p.is_noop:
        lines.append(plan_text(p, source="the database", target=what))
    return lines


def _done(result: MoveResult) -> list[str]:
    p = result.plan
    at = ", ".join(result.after) or "base"
    if p.is_noop and not result.restored:
        return [f"{result.database} is already at {at}: nothing to do."]
    lines = []
    if result.saved:
        lines.append(f"Saved the database as snapshot '{result.saved}'.")
    if result.restored:
        lines.append(f"Restored snapshot '{result.restored}'.")
    lines.append(
        f"Reverted {len(p.downgrade)}, applied {len(p.upgrade)}: {result.database} is at {at}."
    )
    return lines


def hook_lines(result: MoveResult) -> list[str]:
    """What the hook says on standard error after bringing the database along."""
    lines = [f"branchmig: {note}" for note in result.notes]
    if result.restored:
        lines.append(f"branchmig: restored the snapshot of '{result.branch}'")
    p = result.plan
    if not p.is_noop:
        lines.append(
            f"branchmig: {result.database}: reverted {len(p.downgrade)}, applied "
            f"{len(p.upgrade)}; now at {', '.join(result.after) or 'base'}"
        )
    return lines


def merge_json(outcome: MergeOutcome) -> dict[str, Any]:
    return {
        "heads_before": list(outcome.heads_before),
        "written": outcome.written,
        "revision": outcome.revision,
        "rebased_onto": outcome.rebased_onto,
        "db_heads": list(outcome.upgraded),
        "dry_run": outcome.dry_run,
        "summary": "\n".join(_merge_lines(outcome)),
        "move": move_json(outcome.move) if outcome.move is not None else None,
    }


def merge_text(outcome: MergeOutcome) -> tuple[list[str], list[str]]:
    """What was written, its upgrade's lines as a sync's (their notes for standard
    error), where the database is and to commit the file."""
    then = [outcome.then] if outcome.then else []
    if outcome.move is None:
        return [outcome.summary, *then], []
    out, notes = move_text(outcome.move, what="the upgrade")
    return [outcome.summary, *out, *then], notes


def merge_hook_lines(outcome: MergeOutcome) -> list[str]:
    """What the hook says on standard error after closing a merge."""
    moved = hook_lines(outcome.move) if outcome.move is not None else []
    return [*moved, *(f"branchmig: {line}" for line in _merge_lines(outcome))]


def _merge_lines(outcome: MergeOutcome) -> list[str]:
    """The merge's own lines, as ``summary`` in its JSON (the upgrade's are under ``move``)."""
    return [outcome.summary, *([outcome.then] if outcome.then else [])]


def restore_json(result: RestoreResult) -> dict[str, Any]:
    r = result.record
    return {
        "database": result.database,
        "snapshot": r.key,
        "branch": r.branch,
        "heads": list(r.heads),
        "before": list(result.before),
        "kept": result.kept,
        "replaced": result.replaced,
        "recovered": result.recovered,
        "notes": list(result.notes),
    }


def restore_text(result: RestoreResult) -> tuple[list[str], list[str]]:
    """The line for standard output, and the notes for standard error."""
    notes = [f"note: {result.recovered}"] if result.recovered else []
    notes += [f"note: {note}" for note in result.notes]
    replaced = (
        f"the database it replaced is snapshot '{result.replaced}'"
        if result.replaced
        else "the live database was missing and is made again"
    )
    line = (
        f"Restored '{result.record.key}' (heads {', '.join(result.record.heads) or 'base'}); "
        + ("it is kept" if result.kept else "it is used up")
        + f", and {replaced}. If the code differs, run: branchmig sync"
    )
    return [line], notes
