"""The snapshot commands rendered: ``snapshot list``, ``save`` and ``prune``, as text and
JSON (``snapshot restore`` is a move: ``reports.move``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from branchmig.snapshots.base import format_size

if TYPE_CHECKING:
    from branchmig.snapshotting import PruneResult, SnapshotInfo
    from branchmig.state import SnapshotRecord


def snapshot_json(info: SnapshotInfo) -> dict[str, Any]:
    r = info.record
    return {
        "key": r.key,
        "branch": r.branch,
        "branch_exists": info.branch_exists,
        "heads": r.heads,
        "commit": r.commit,
        "size": r.size,
        "created": r.created,
        "backend": r.backend,
        "purpose": r.purpose,
        "present": info.present,
        "restored_by": list(info.restored_by),
        "stray": info.stray,
    }


def list_text(infos: list[SnapshotInfo], *, now: float) -> list[str]:
    """A table: key, branch, heads, commit, size, age (from ``now``) and backend."""
    if not infos:
        return ["No snapshots of this database."]
    rows = [
        (
            info.record.key,
            _branch(info),
            ",".join(info.record.heads) or "base",
            (info.record.commit or "")[:7],
            format_size(info.record.size),
            age(now - info.record.created),
            info.record.backend + _flag(info),
        )
        for info in infos
    ]
    header = ("KEY", "BRANCH", "HEADS", "COMMIT", "SIZE", "AGE", "BACKEND")
    # Columns as wide as their longest value: a long branch name shifts, never breaks them.
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    lines = []
    for row in (header, *rows):
        cells = [
            cell.rjust(width) if i in (4, 5) else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append(f"{' '.join(cells[:4])} {cells[4]} {cells[5]}  {row[6]}")
    return lines


def age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _branch(info: SnapshotInfo) -> str:
    r = info.record
    return (r.branch or "(detached)") + ("" if info.branch_exists or not r.branch else " (deleted)")


def _flag(info: SnapshotInfo) -> str:
    if not info.present:
        return " (missing: the index names it but the server holds no copy)"
    return " (stray: no checkout restores it)" if info.stray else ""


def saved_text(record: SnapshotRecord) -> str:
    return (
        f"Saved snapshot '{record.key}' ({format_size(record.size)}, heads "
        f"{', '.join(record.heads) or 'base'})."
    )


def prune_json(result: PruneResult, *, dry_run: bool) -> dict[str, Any]:
    return {
        "dry_run": dry_run,
        "dropped": [snapshot_json(i) for i in result.dropped],
        "kept_restorable": [snapshot_json(i) for i in result.kept_restorable],
        "kept_saved": [snapshot_json(i) for i in result.kept_saved],
        "scratches_dropped": result.scratches,
    }


def prune_text(result: PruneResult, *, dry_run: bool) -> list[str]:
    verb = "Would drop" if dry_run else "Dropped"
    lines = [
        f"Dropped the scratch database '{name}' of a verify that was killed"
        for name in result.scratches
    ]
    for info in result.dropped:
        why = (
            "its copy already gone"
            if not info.present
            else f"restored by checking out {_names(info.restored_by)}"
            if info.restored_by
            else "no checkout restores it"
        )
        lines.append(f"{verb} '{info.record.key}' ({info.record.branch or 'detached'}: {why})")
    lines += [
        f"Kept '{info.record.key}' ({info.record.branch or 'detached'}): restored by "
        f"checking out {_names(info.restored_by)}; to drop it anyway: "
        f"branchmig snapshot drop {info.record.key}"
        for info in result.kept_restorable
    ]
    lines += [
        f"Kept '{info.record.key}' ({info.record.branch or 'detached'}): saved by name; "
        f"drop it with: branchmig snapshot drop {info.record.key}"
        for info in result.kept_saved
    ]
    if not result.dropped:
        lines.append("Nothing to prune.")
    return lines


def _names(branches: tuple[str, ...]) -> str:
    return ", ".join(f"'{b}'" for b in branches)
