"""The lifecycle's pure decisions, as properties over generated snapshots and trees."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from branchmig.graph import Revision
from branchmig.lifecycle import (
    Held,
    SnapshotDecision,
    Text,
    applied_texts,
    choose_restore,
    decide_snapshots,
    mismatch,
    next_text,
    restorers,
    snapshot_key,
    unsure,
)

REVS = ["a", "b", "c", "d"]
BLOBS = ["1", "2"]
BRANCHES = ["main", "feature1", "Feature1", "f/x", "feature-1", "ü"]

trees = st.dictionaries(st.sampled_from(REVS), st.sampled_from(BLOBS), max_size=4)


@st.composite
def helds(draw: st.DrawFn) -> Held:
    applied = draw(trees)
    return Held(
        key=f"k{draw(st.integers(0, 10**6))}",
        branch=draw(st.sampled_from([*BRANCHES, None])),
        commit=draw(st.sampled_from(["c1", "c2", None])),
        heads=tuple(sorted(applied))[-1:],
        applied=applied,
        created=draw(st.floats(0, 100)),
        purpose=draw(st.sampled_from(["branch", "safety", "manual", "replaced"])),
    )


candidate_lists = st.lists(helds(), max_size=6, unique_by=lambda h: h.key)


@given(
    st.sampled_from([*BRANCHES, None]),
    st.sampled_from(BRANCHES),
    st.text("0123456789abcdefghijklmnopqrstuvwxyz", min_size=12, max_size=12),
)
def test_keys_are_valid_and_never_shared_by_two_branch_names(
    a: str | None, b: str, token: str
) -> None:
    key = snapshot_key(a, token)
    assert re.fullmatch(r"[a-z0-9_-]{1,40}", key)
    if a != b:
        assert key != snapshot_key(b, token)
    assert key != snapshot_key(a, token[::-1]) or token == token[::-1]


@given(
    st.sampled_from(BRANCHES), st.sampled_from([*BRANCHES, None]), candidate_lists, trees, st.data()
)
def test_a_restore_always_fits_the_target_and_prefers_the_branchs_own(
    entering: str,
    leaving: str | None,
    candidates: list[Held],
    target: dict[str, str],
    data: st.DataObject,
) -> None:
    keys = [h.key for h in candidates]
    strays = set(data.draw(st.lists(st.sampled_from(keys), unique=True))) if keys else set()
    line = set(data.draw(st.lists(st.sampled_from(keys), unique=True))) if keys else set()
    choice = choose_restore(
        entering=entering,
        leaving=leaving,
        candidates=candidates,
        target=target,
        strays=strays,
        on_our_line=line,
    )
    held = choice.held
    own_fitting = [
        h
        for h in candidates
        if h.branch == entering and h.purpose in ("branch", "manual") and not mismatch(h, target)
    ]
    if entering == leaving:
        assert held is None
        return
    if held is None:
        assert not own_fitting
        assert not [
            h for h in candidates if h.key in strays and h.key in line and not mismatch(h, target)
        ]
        return
    assert not mismatch(held, target)
    if own_fitting:
        assert held == max(own_fitting, key=lambda h: h.created)
    else:
        assert held.key in strays and held.key in line


@given(
    candidate_lists,
    st.sampled_from([*BRANCHES, None]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.sampled_from(["auto", "always", "never"]),
    st.booleans(),
    st.data(),
)
def test_a_save_takes_a_new_key_and_replaces_only_the_leaving_branchs(
    candidates: list[Held],
    leaving: str | None,
    noop: bool,
    destructive: bool,
    restoring: bool,
    mode: str,
    at_base: bool,
    data: st.DataObject,
) -> None:
    keys = [h.key for h in candidates]
    superseded = set(data.draw(st.lists(st.sampled_from(keys), unique=True))) if keys else set()
    use = mode != "never"
    d = decide_snapshots(
        use=use,
        mode=mode,
        forced=False,
        noop=noop,
        destructive=destructive,
        restoring=restoring,
        at_base=at_base,
        leaving=leaving,
        entering="main",
        token="tok000000000",
        candidates=candidates,
        superseded=superseded,
    )
    # The branch left keeps its rows, even when nothing runs (a branch made on its commit).
    changes_owner = leaving is not None and leaving != "main" and not at_base
    if not use or (noop and not restoring and not changes_owner):
        assert d.save is None and not d.replaces
        return
    assert d.save is not None and d.save not in keys
    assert d.keep == (destructive or changes_owner or mode == "always" or restoring)
    assert d.save.startswith("b-" if d.keep else "s-")
    for key in d.replaces:
        h = next(h for h in candidates if h.key == key)
        assert h.branch == leaving and h.purpose == "branch" and key in superseded
    if not d.keep:
        assert d.replaces == ()
    assert (d.resave is not None) == (restoring and not noop)


def _decide(
    *, leaving: str | None, entering: str | None, destructive: bool = False, at_base: bool = False
) -> SnapshotDecision:
    return decide_snapshots(
        use=True,
        mode="auto",
        forced=False,
        noop=False,
        destructive=destructive,
        restoring=False,
        at_base=at_base,
        leaving=leaving,
        entering=entering,
        token="tok000000000",
        candidates=[],
        superseded=set(),
    )


def test_leaving_a_branch_for_another_keeps_its_copy_whatever_the_steps() -> None:
    # An upgrade-only move (nothing destructive found): the safety copy becomes the left
    # branch's snapshot, so its rows come back even if the upgrade rewrote them.
    for entering in ("new", None):
        d = _decide(leaving="old", entering=entering)
        assert d.keep and d.save is not None and d.save.startswith("b-old-")
    # Staying on the branch (a sync after a pull) or leaving a detached HEAD keeps the
    # copy only when a step loses data.
    for leaving, entering in (("old", "old"), (None, "old")):
        assert not _decide(leaving=leaving, entering=entering).keep
        assert _decide(leaving=leaving, entering=entering, destructive=True).keep
    # A new database (no revision applied) holds no branch's rows.
    assert not _decide(leaving="old", entering="new", at_base=True).keep


# Trees that all differ, so that every move between two of them migrates: old, then mid
# and new upgrade-only moves ahead of it, side apart.
TREES = {
    "old": {"a": "1"},
    "mid": {"a": "1", "b": "1"},
    "new": {"a": "1", "b": "1", "c": "1"},
    "side": {"a": "1", "d": "1"},
}


@dataclass
class _World:
    """A database and its snapshots as a move changes them, content as a label."""

    owner: str
    applied: dict[str, str]
    rows: str
    held: dict[str, tuple[Held, str]] = field(default_factory=dict)  # key -> (held, rows)
    clock: int = 0

    def move(self, entering: str, *, mode: str, destructive: bool) -> None:
        self.clock += 1
        tree = TREES[entering]
        candidates = [h for h, _ in self.held.values()]
        choice = choose_restore(
            entering=entering,
            leaving=self.owner,
            candidates=candidates,
            target=tree,
            strays=set(),
            on_our_line=set(),
        )
        restoring = choice.held
        start = restoring.applied if restoring is not None else self.applied
        d = decide_snapshots(
            use=True,
            mode=mode,
            forced=False,
            noop=start == tree,
            destructive=destructive,
            restoring=restoring is not None,
            leaving=self.owner,
            entering=entering,
            token=f"t{self.clock:011d}",
            candidates=candidates,
            superseded={
                h.key
                for h in candidates
                if h.branch == self.owner and not mismatch(h, self.applied)
            },
        )
        if d.save is not None:
            purpose = "branch" if d.keep else "safety"
            held = Held(d.save, self.owner, None, (), dict(self.applied), self.clock, purpose)
            self.held[d.save] = (held, self.rows)
        if restoring is not None:  # restored into the live database: it is no more
            _, self.rows = self.held.pop(restoring.key)
        for key in d.replaces:
            del self.held[key]
        if d.save is not None and not d.keep:
            del self.held[d.save]
        self.owner, self.applied = entering, dict(tree)


@settings(max_examples=200)
@given(
    st.lists(st.tuples(st.sampled_from(sorted(TREES)), st.booleans()), min_size=1, max_size=12),
    st.sampled_from(["auto", "always"]),
)
def test_every_branch_entered_again_finds_its_last_rows(
    moves: list[tuple[str, bool]], mode: str
) -> None:
    """Whatever the moves (upgrade-only or not, destructive or not), a branch entered
    again holds the rows it had when it was left, by the decisions alone; one snapshot
    per branch at most."""
    world = _World(owner="old", applied=dict(TREES["old"]), rows="old#0")
    last = {"old": "old#0"}
    for n, (entering, destructive) in enumerate(moves, 1):
        if entering == world.owner:
            continue
        world.move(entering, mode=mode, destructive=destructive)
        if entering in last:
            assert world.rows == last[entering], (entering, world.held)
        world.rows = last[entering] = f"{entering}#{n}"  # rows written on the branch
        per_branch = [h.branch for h, _ in world.held.values()]
        assert len(per_branch) == len(set(per_branch))


def test_rows_carried_forward_come_back() -> None:
    """Issue 20, item 5: insert at old, then mid (upgrade only), new, old again."""
    world = _World(owner="new", applied=dict(TREES["new"]), rows="new#0")
    world.move("old", mode="auto", destructive=True)  # new's snapshot kept
    world.rows = "old + a row"
    for entering in ("mid", "new", "old"):
        world.move(entering, mode="auto", destructive=False)
    assert world.rows == "old + a row"


def test_who_restores_a_snapshot() -> None:
    held = Held("k", "feature1", "c1", ("b",), {"a": "1", "b": "1"}, 0.0)
    tips = {
        "feature1": {"a": "1", "b": "1"},
        "work": {"a": "1", "b": "1", "c": "2"},
        "main": {"a": "1"},
    }
    assert restorers(held, tips, {}) == ["feature1"]
    moved = {**tips, "feature1": {"a": "1", "b": "2"}}  # its script changed since
    assert restorers(held, moved, {"work": {"c1"}}) == ["work"]
    assert restorers(held, moved, {}) == []
    unknown = Held("u", "main", "c1", (), None, 0.0)
    assert mismatch(unknown, tips["main"]) == ["(unknown)"]


# -- which text reverts a revision whose script changed ----------------------------------

_blobs = st.lists(st.sampled_from(["b1", "b2", "b3", "b4"]), max_size=6)


def _text(blob: str, where: str) -> Text:
    return Text(Revision("r1", path="versions/r1.py", blob=blob), where)


@given(recorded=st.none() | st.sampled_from(["b1", "b2", "b5"]), found=_blobs)
def test_every_text_is_tried_once_the_record_first(recorded: str | None, found: list[str]) -> None:
    own = _text(recorded, "branchmig's record") if recorded is not None else None
    texts = applied_texts(own, [_text(b, f"HEAD@{{{n}}}") for n, b in enumerate(found)])
    expected = list(dict.fromkeys([*([recorded] if recorded else []), *found]))
    assert [t.revision.blob for t in texts] == expected
    if own is not None:
        assert texts[0] is own
    tried: list[str] = []
    while (text := next_text(texts, tried)) is not None:
        tried.append(text.revision.blob)
    assert tried == expected  # each once, in order, then none is left
    assert unsure(own, texts) == (own is None and len(expected) > 1)


def test_a_text_is_described_by_its_short_blob_and_where_it_was_found() -> None:
    assert _text("aeca5e39" + "0" * 32, "HEAD@{1}").describe() == "aeca5e39 from HEAD@{1}"
