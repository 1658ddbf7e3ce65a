"""The facts a move is decided on (the database's heads and owner, the scripts that
applied it, the snapshots held, the plan), and the decision ``lifecycle`` makes of them."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

from branchmig.dbread import read_database, sqlite_constrained_columns
from branchmig.destructive import batch_warnings, with_destructive
from branchmig.errors import DatabaseError
from branchmig.graph import Graph, Revision
from branchmig.lifecycle import (
    Held,
    RestoreChoice,
    SnapshotDecision,
    choose_restore,
    decide_snapshots,
    mismatch,
)
from branchmig.move.applied import applied_key, applied_source, script_text
from branchmig.move.request import MoveRequest
from branchmig.plan import Plan, make_plan
from branchmig.provenance import (
    blobs_of,
    held_snapshots,
    on_line,
    owner_of_database,
    strays_among,
    unsure_texts,
)
from branchmig.session import Session, recall
from branchmig.state import Owner


@dataclass(frozen=True)
class Decided:
    """What a move will do: from whom the database is taken, with which scripts, by which
    plan, restoring which snapshot and saving which."""

    owner: Owner
    source: Graph
    plan: Plan
    restore: Held | None
    snapshots: SnapshotDecision
    applied: dict[str, str]  # what the database being left holds: revision -> blob


def decide(
    s: Session, req: MoveRequest, *, reverting_with: Mapping[str, Revision] | None = None
) -> Decided:
    """Gather the facts (owner, snapshots, plan) and let ``lifecycle`` decide.
    ``reverting_with``: the scripts to revert these revisions with, in place of those
    found first (a text tried after another failed)."""
    ws, state = s.ws, s.state
    split = s.db.disagreement()
    if split:
        raise DatabaseError(
            f"Cannot move {s.masked}: {split}; bring them to one revision "
            "(flask db upgrade or downgrade), then run: branchmig sync"
        )
    mode = ws.project.settings.snapshots
    use = req.snapshot if req.snapshot is not None else mode != "never"
    before = s.db.heads
    key = applied_key(state, s.dbid)
    source = applied_source(ws, state, before, key, previous=req.previous, target=req.target)
    if reverting_with:
        source = Graph.build([reverting_with.get(r.id, r) for r in source.revisions.values()])
    owner = owner_of_database(ws, state, s.dbid, before, hint=req.hint, hint_commit=req.previous)
    held = held_snapshots(state, s.dbid) if use else []
    choice = RestoreChoice(None)
    if use and req.entering is not None and req.entering != owner.branch:
        choice = _restore_choice(s, req, req.entering, owner, held)
    s.notes.extend(choice.notes)
    restore = choice.held
    plan = _plan(s, req.target, source, restore)
    applied = blobs_of(source, tuple(source.ancestors(before, strict=False)))
    for rev_id in _unvouched(s, key, applied, reverting_with, req.target):
        del applied[rev_id]  # any text fits: a snapshot of this database claims none
    superseded = {h.key for h in held if h.branch == owner.branch and not mismatch(h, applied)}
    decision = decide_snapshots(
        use=use,
        mode=mode,
        forced=req.snapshot is True,
        noop=plan.is_noop,
        destructive=bool(plan.destructive),
        restoring=restore is not None,
        at_base=not before,
        leaving=owner.branch,
        entering=req.entering,
        token=token(),
        candidates=held,
        superseded=superseded,
    )
    return Decided(owner, source, plan, restore, decision, applied)


def _restore_choice(
    s: Session, req: MoveRequest, entering: str, owner: Owner, held: list[Held]
) -> RestoreChoice:
    """Which snapshot, if any, the entering branch's database comes back from."""
    wanted = blobs_of(req.target)
    others = [h for h in held if h.branch != entering and not mismatch(h, wanted)]
    strays = strays_among(s.ws, others)
    line = on_line(s.ws, [h for h in others if h.key in strays], req.target_commit)
    return choose_restore(
        entering=entering,
        leaving=owner.branch,
        candidates=held,
        target=wanted,
        strays=strays,
        on_our_line=line,
    )


def _unvouched(
    s: Session,
    key: str,
    applied: Mapping[str, str],
    reverting_with: Mapping[str, Revision] | None,
    target: Graph,
) -> list[str]:
    """The revisions of ``applied`` whose text nothing vouches for: plain Alembic applied
    them, branchmig recorded no text, and git holds several (``provenance.unsure_texts``).
    The source graph has one of them, not necessarily the one that migrated the
    database, so a snapshot of it must not claim that text (the record does not either)."""
    known = s.state.applied(key)
    loose = [r for r in applied if r not in known and r not in (reverting_with or {})]
    return list(unsure_texts(s.ws, known, loose, target=target)) if loose else []


def _plan(s: Session, target: Graph, source: Graph, restore: Held | None) -> Plan:
    """The steps from the database (or the snapshot restored) to ``target``, with what
    the downgrades destroy; SQLite's batch warnings said before anything runs."""
    if restore is not None:  # the plan starts from the snapshot, not from the database
        plan = make_plan(applied_heads=restore.heads, source=target, target=target)
    else:
        plan = make_plan(applied_heads=s.db.heads, source=source, target=target)
        # Each text the downgrades run, as they will run it (fail before anything is
        # touched, dry run or not): what they destroy is read from the same texts.
        texts = {r: script_text(s.ws, s.state, source.revisions[r]) for r in plan.downgrade}
        plan = with_destructive(
            s.ws, plan, source, target, texts=texts, columns=lambda: _columns(s)
        )
    if plan.batch_needed and s.db.on_sqlite and not s.remembered:
        for warning in batch_warnings(plan, source):  # before anything runs
            s.progress(f"branchmig: warning: {warning}")
    return plan


def _columns(s: Session) -> dict[str, list[str]]:
    """Which columns of the live SQLite database(s) SQLite cannot drop in place, by
    their own word; none on another database (nothing is refused there)."""
    found: dict[str, list[str]] = {}
    for db in s.db.databases:
        if db.url.startswith("sqlite"):
            for key, what in sqlite_constrained_columns(db.url).items():
                found[key] = list(dict.fromkeys([*found.get(key, []), *what]))
    return found


def token() -> str:
    """New for every save: milliseconds since the epoch in base 36, and 2 random bytes."""
    ms, digits = int(time.time() * 1000), ""
    while ms:
        ms, digit = divmod(ms, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
    return digits[-8:] + os.urandom(2).hex()


def heads_now(s: Session) -> tuple[str, ...]:
    """The database's heads as they are now (none when it cannot be read)."""
    if s.remembered:
        found = recall(s.ws, s.state)
        return found[0].heads if found is not None else ()
    try:
        return read_database(s.env).heads
    except DatabaseError:
        return ()
