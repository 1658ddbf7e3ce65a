"""The snapshot lifecycle's decisions. Pure: data in, data out; no git, no database.

A snapshot is known by what it holds (the revisions applied, each with its script's blob
id) and where it came from (the exact branch name and the commit). A move of the database
asks three questions, each answered here:

- which snapshot, if any, to restore for the branch entered (``choose_restore``): the
  branch's own, newest first, when everything it holds is in the target with the same
  text; else one that no branch would restore any more (its branch deleted, reset or
  rebased away) taken on a commit the entered one contains;
- what to save of the database being left, and under which key (``decide_snapshots``):
  always a new key, so a failed save leaves every earlier snapshot as it was;
- which snapshots no branch will restore (``restorers``), for ``status`` and ``prune``;
- what ``snapshot restore`` keeps, of the live database and of the snapshot
  (``decide_restore``);
- with which text to revert a revision whose script was changed after it was applied
  (``applied_texts``, ``next_text``): branchmig's record first, then each text git
  still holds, tried in turn while a downgrade that does not fit is put back.

The invariants ``decide_snapshots`` keeps, with snapshots on:

- a move that changes anything saves the database first (all or nothing);
- the copy is kept as the left branch's snapshot whenever the database changes owner
  (a named branch left for another branch or a detached HEAD; a database with no
  revision applied holds no branch's rows), whatever the move's steps are: an upgrade
  can drop or rewrite the left branch's rows as well as a downgrade, and rows carried
  forward by an upgrade-only move would otherwise live on only in the entered branch's
  database (left for a third branch, then downgraded);
- it is kept too when any step in either direction loses data or cannot be read, when
  a snapshot is restored, in mode ``always`` and with ``--snapshot``;
- a kept copy replaces the left branch's older snapshots it supersedes: one per branch.

So a branch entered again restores its own snapshot, holding its last rows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from branchmig.graph import Revision

# The snapshots a checkout of their own branch restores: saved for the branch on leaving
# it, or by name (``snapshot save NAME``); not what a restore or a move set aside.
OWN_RESTORE_PURPOSES = ("branch", "manual")


@dataclass(frozen=True)
class Held:
    """A snapshot as the decisions see it."""

    key: str
    branch: str | None  # the exact branch name it was taken on; None: detached
    commit: str | None
    heads: tuple[str, ...]
    applied: Mapping[str, str] | None  # revision id -> blob id; None when not known
    created: float
    purpose: str = "branch"


@dataclass(frozen=True)
class RestoreChoice:
    held: Held | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SnapshotDecision:
    """What a move does with snapshots. ``save`` is the key the database left is saved
    under first (None: no snapshot); kept afterwards for its branch when ``keep``, else
    dropped once the move succeeded (it only made the move all or nothing)."""

    save: str | None
    keep: bool
    resave: str | None  # the restored content, saved again before migrating further
    replaces: tuple[str, ...]  # the leaving branch's older snapshots, dropped once saved


def snapshot_key(branch: str | None, token: str, *, prefix: str = "b") -> str:
    """A new key for a snapshot of ``branch``: readable, never shared by two branch names
    (the exact name is hashed in, so ``feature1`` and ``Feature1`` differ) and never
    reused (``token`` is new for every save). At most 40 of ``[a-z0-9_-]``."""
    name = branch if branch is not None else "(detached)"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:14] or "x"
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:6]
    return f"{prefix}-{slug}-{digest}-{token[:12]}"


def mismatch(held: Held, target: Mapping[str, str]) -> list[str]:
    """The revisions ``held`` has that ``target`` (revision -> blob) lacks or has with
    another script; empty when the snapshot fits."""
    if held.applied is None:
        return ["(unknown)"]
    changed = [r for r, blob in held.applied.items() if target.get(r) != blob]
    changed += [h for h in held.heads if h not in target and h not in changed]
    return sorted(changed)


def choose_restore(
    *,
    entering: str | None,
    leaving: str | None,
    candidates: Sequence[Held],
    target: Mapping[str, str],
    strays: Collection[str],
    on_our_line: Collection[str],
) -> RestoreChoice:
    """The snapshot to restore when ``entering`` is checked out. ``target`` is the entered
    tree's revisions (id -> blob). ``strays``: keys their own branch would not restore
    (deleted, or moved to other scripts); ``on_our_line``: keys taken on a commit the
    entered one contains.
    Staying on the branch the database belongs to restores nothing: the database is its
    latest state."""
    if entering is None or entering == leaving:
        return RestoreChoice(None)
    notes: list[str] = []
    newest_first = sorted(candidates, key=lambda h: -h.created)
    for held in newest_first:
        if held.branch != entering or held.purpose not in ("branch", "manual"):
            continue
        changed = mismatch(held, target)
        if not changed:
            return RestoreChoice(held, tuple(notes))
        notes.append(
            f"the snapshot of '{entering}' ('{held.key}') is kept but not restored: its "
            f"scripts changed since it was taken ({_few(changed)}); restore it by hand "
            f"with: branchmig snapshot restore {held.key}"
        )
    for held in newest_first:
        if held.key in strays and held.key in on_our_line and not mismatch(held, target):
            notes.append(
                f"restoring '{held.key}', the database of "
                f"'{held.branch or 'a detached HEAD'}' at {(held.commit or '')[:7]}, "
                f"which no other branch restores"
            )
            return RestoreChoice(held, tuple(notes))
    return RestoreChoice(None, tuple(notes))


def decide_snapshots(
    *,
    use: bool,
    mode: str,
    forced: bool,
    noop: bool,
    destructive: bool,
    restoring: bool,
    at_base: bool = False,
    leaving: str | None,
    entering: str | None,
    token: str,
    candidates: Sequence[Held],
    superseded: Collection[str],
) -> SnapshotDecision:
    """What to save before a move. ``use``: snapshots are on for it; ``forced``:
    ``--snapshot`` was given; ``destructive``: a step of the move, in either direction,
    loses data or cannot be read; ``token``: new for this move; ``superseded``: keys of
    the leaving branch's snapshots whose content the database being left has moved on
    from (they fit its graph); ``at_base``: the database left has no revision applied
    (a new database: no branch's rows in it).

    The copy taken for all-or-nothing is kept for ``leaving`` whenever the database
    changes owner (keeping it costs disk, not time: it is made anyway), so that entering
    ``leaving`` again restores its last rows, even those an upgrade-only move carried
    into another branch's database."""
    changes_owner = leaving is not None and entering != leaving and not at_base
    # Even a move that runs nothing: a branch made on the same commit (`checkout -b`)
    # starts from these rows and may change them; the branch left keeps its own.
    if not use or (noop and not restoring and not changes_owner):
        return SnapshotDecision(None, False, None, ())
    keep = destructive or changes_owner or mode == "always" or forced or restoring
    replaces = tuple(
        h.key
        for h in candidates
        if keep and h.branch == leaving and h.purpose == "branch" and h.key in superseded
    )
    save = snapshot_key(leaving, token, prefix="b" if keep else "s")
    resave = snapshot_key(entering, token, prefix="r") if restoring and not noop else None
    return SnapshotDecision(save, keep, resave, replaces)


@dataclass(frozen=True)
class RestoreDecision:
    """What ``snapshot restore`` does: ``key`` made live, the live database kept first as
    ``replaced`` (None: it is missing from its server, there is nothing to keep), and the
    snapshot saved again under its key to be returned to (``keep``) or used up."""

    key: str
    replaced: str | None
    keep: bool


def decide_restore(
    *, key: str, purpose: str, keep: bool | None, live_missing: bool, stamp: str
) -> RestoreDecision:
    """``keep`` as asked (None: a snapshot saved by name stays, a save point to return to
    again; any other is used up, as a branch saves a new one when it is left); ``stamp``:
    new for this restore (its time and a token), naming the copy of what it replaces."""
    return RestoreDecision(
        key,
        None if live_missing else f"replaced-{stamp}",
        keep if keep is not None else purpose == "manual",
    )


def restorers(
    held: Held, tips: Mapping[str, Mapping[str, str]], contains: Mapping[str, Collection[str]]
) -> list[str]:
    """The branches that would restore ``held`` on checkout, as ``choose_restore`` picks:
    its own branch when it fits the branch's tip (a branch's or a named save, not the
    copy a restore or a move set aside); else, its own branch gone or moved to other
    scripts, any branch whose tip it fits and whose history holds the commit it was
    taken on (a renamed branch, one made from a deleted one). ``tips``: branch -> its
    tip's revisions (id -> blob); ``contains``: branch -> the snapshot commits in its
    history. Empty: no checkout restores it, only ``snapshot restore``. This one answer
    is what ``status`` shows and what ``prune`` spares."""
    own = held.branch
    if own is not None and own in tips and not mismatch(held, tips[own]):
        return [own] if held.purpose in OWN_RESTORE_PURPOSES else []
    return [
        name
        for name, revisions in sorted(tips.items())
        if held.commit in contains.get(name, ()) and not mismatch(held, revisions)
    ]


def _few(items: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(f"'{i}'" for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


@dataclass(frozen=True)
class Text:
    """One text of an applied revision's script (``revision.blob`` names it, its header
    is as this text has it) and where it was found: "branchmig's record", "the previous
    HEAD", "the working tree", "HEAD@{2}", a branch's name."""

    revision: Revision
    where: str

    def describe(self) -> str:
        return f"{self.revision.blob[:8]} from {self.where}"


def applied_texts(recorded: Text | None, found: Sequence[Text]) -> tuple[Text, ...]:
    """The texts that may have migrated the database with one revision, each once, in
    the order a revert tries them: branchmig's record of the text it saw applied (it
    ran it, or adopted it when git held no other), then git's, in the order found (the
    commit the database followed, the target, ORIG_HEAD, the reflogs newest first, the
    refs): an amended commit's earlier self is the reflog's next entry."""
    texts: dict[str, Text] = {}
    for text in [*([recorded] if recorded is not None else []), *found]:
        texts.setdefault(text.revision.blob, text)
    return tuple(texts.values())


def unsure(recorded: Text | None, texts: Sequence[Text]) -> bool:
    """Whether nothing says which of ``texts`` migrated the database: branchmig did not
    record one and git holds several (plain Alembic ran one, then the script changed)."""
    return recorded is None and len({t.revision.blob for t in texts}) > 1


def next_text(texts: Sequence[Text], tried: Collection[str]) -> Text | None:
    """The first of ``texts`` whose blob is not among ``tried``: the text to revert with
    after a downgrade with the others failed and the database was put back."""
    return next((t for t in texts if t.revision.blob not in tried), None)
