"""``status`` rendered: the database against the working tree, its snapshots, and the
last move's failure, as text and JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from branchmig.status import FailedStep, SnapshotStatus, StatusResult


def status_json(st: StatusResult) -> dict[str, Any]:
    suspect = st.suspect
    return {
        "database": st.database,
        "branch": st.branch,
        "owner": st.owner,
        "db_heads": list(st.db_heads),
        "code_heads": list(st.code_heads),
        "pending": list(st.pending),
        "unknown": list(st.unknown),
        "unknown_found_in": {k: list(v) for k, v in st.unknown_found_in.items()},
        "snapshots": [_snapshot_json(x) for x in st.snapshots],
        "stray_copies": list(st.stray_copies),
        "dead_scratches": list(st.dead_scratches),
        "several_texts": {k: list(v) for k, v in st.several_texts.items()},
        "interrupted": st.interrupted,
        "recovered": st.recovered,
        "suspect": None
        if suspect is None
        else {
            "revision": suspect.revision,
            "direction": suspect.direction,
            "operation": suspect.operation,
            "to": suspect.to,
        },
        "databases": [
            {"name": d.name, "database": d.database, "heads": list(d.heads)} for d in st.databases
        ],
        "split": st.split,
        "in_step": st.in_step,
        "failure": failure_json(st.failed),
    }


def _snapshot_json(x: SnapshotStatus) -> dict[str, Any]:
    return {
        "key": x.held.key,
        "branch": x.held.branch,
        "heads": list(x.held.heads),
        "commit": x.held.commit,
        "size": x.size,
        "created": x.held.created,
        "backend": x.backend,
        "purpose": x.held.purpose,
        "present": x.present,
        "restored_by": list(x.restored_by),
        "stray": x.present and not x.restored_by,
    }


def status_text(st: StatusResult) -> list[str]:
    return [
        *_where(st),
        *_behind(st),
        *(failure_text(st.failed) if st.failed else []),
        *(_snapshot_line(x) for x in st.snapshots),
        *_leftovers(st),
        *_several_texts(st),
        *(["The database matches the working tree."] if st.in_step else []),
    ]


def _where(st: StatusResult) -> list[str]:
    lines = (
        [
            f"database:   {d.database} ({d.name or 'default'}; at {', '.join(d.heads) or 'base'})"
            for d in st.databases
        ]
        if st.databases
        else [f"database:   {st.database}"]
    )
    lines += [
        f"branch:     {st.branch or '(detached)'}",
        f"code heads: {', '.join(st.code_heads) or '(none)'}",
        f"db heads:   {', '.join(st.db_heads) or '(base)'}",
    ]
    if st.split:
        lines.append(
            f"split:      {st.split}; bring them to one revision (flask db upgrade "
            "or downgrade), then run: branchmig sync"
        )
    return lines


def _behind(st: StatusResult) -> list[str]:
    # A sync that would run the failed step again is not suggested: the failure's own
    # lines say what to do instead.
    sync = "" if st.failed and st.failed.repeats else "run: branchmig sync"
    lines = []
    if st.pending:
        lines.append(f"pending:    {', '.join(st.pending)}" + (f"  ({sync})" if sync else ""))
    for rev in st.unknown:
        refs = st.unknown_found_in.get(rev, ())
        where = ", ".join(refs[:5]) + (f" and {len(refs) - 5} more" if len(refs) > 5 else "")
        where = where or "no ref"
        lines.append(f"unknown:    {rev} (on {where}" + (f"; {sync})" if sync else ")"))
    return lines


def _several_texts(st: StatusResult) -> list[str]:
    return [
        f"texts:      '{rev}': git holds {len(texts)} texts of its script "
        f"({', '.join(texts)}) and branchmig recorded none as applied: which one migrated "
        "the database is not known; a revert tries each in turn, putting the database "
        "back between"
        for rev, texts in st.several_texts.items()
    ]


def _snapshot_line(x: SnapshotStatus) -> str:
    h = x.held
    whose = (
        f"restored by checking out {', '.join(repr(b) for b in x.restored_by)}"
        if x.restored_by
        else f"stray: no checkout restores it; run: branchmig snapshot restore {h.key}"
    )
    if not x.present:
        whose = (
            "missing: the index names it but the server holds no copy; run: "
            f"branchmig snapshot drop {h.key}"
        )
    return (
        f"snapshot:   {h.key} ({h.branch or 'detached'}, {', '.join(h.heads) or 'base'}; {whose})"
    )


def _leftovers(st: StatusResult) -> list[str]:
    lines = [
        f"scratch:    '{name}' of a verify that was killed; run: branchmig verify, or "
        "branchmig snapshot prune --strays"
        for name in st.dead_scratches
    ]
    lines += [
        f"unindexed:  a snapshot copy '{key}' is on the server but in no index "
        "entry (left by a killed save?)"
        for key in st.stray_copies
    ]
    if st.recovered:
        lines.append(f"recovered:  {st.recovered}")
    if st.interrupted:
        lines.append(
            f"interrupted: {st.interrupted}; wait for it to finish (or end that "
            "process: the next branchmig command puts its move back)"
        )
    suspect = st.suspect
    if suspect is not None:
        lines.append(
            f"suspect:    a killed {suspect.operation} to '{suspect.to}' was running "
            f"the {suspect.direction} of '{suspect.revision}' with no snapshot: it may "
            "be half made; check its tables, then run: branchmig sync"
        )
    return lines


def failure_text(failed: FailedStep) -> list[str]:
    f = failed.failure
    what = f"the rehearsal of a {f.operation}" if f.rehearsal else f"a {f.operation}"
    left = (
        "the live database was not touched"
        if f.rehearsal
        else "the database was put back as it was"
        if f.restored
        else f"the database was left at {', '.join(f.heads) or 'base'}"
    )
    if f.half_made:
        left += (
            f" ('{f.half_made}' may be half made where DDL is not transactional: check its tables)"
        )
    lines = [
        f"failed:     {what} to '{f.to}': {f.direction.capitalize()} of '{f.revision}' "
        f"failed: {f.cause}; {left}"
    ]
    if f.fix:
        lines.append(f"fix:        {f.fix}")
    lines.append(f"next:       {failed.next}")
    return lines


def failure_json(failed: FailedStep | None) -> dict[str, Any] | None:
    if failed is None:
        return None
    f = failed.failure
    return {
        "operation": f.operation,
        "to": f.to,
        "direction": f.direction,
        "revision": f.revision,
        "path": f.path,
        "cause": f.cause,
        "fix": f.fix,
        "heads": list(f.heads),
        "restored": f.restored,
        "rehearsal": f.rehearsal,
        "half_made": f.half_made,
        "at": f.at,
        "sync_repeats_it": failed.repeats,
        "next": failed.next,
    }
