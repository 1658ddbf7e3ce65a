"""The lifecycle's pure decisions, as properties over generated snapshots and trees."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from branchmig.lifecycle import (
    Held,
    choose_restore,
    decide_snapshots,
    mismatch,
    restorers,
    snapshot_key,
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
    st.data(),
)
def test_a_save_takes_a_new_key_and_replaces_only_the_leaving_branchs(
    candidates: list[Held],
    leaving: str | None,
    noop: bool,
    destructive: bool,
    restoring: bool,
    mode: str,
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
        leaving=leaving,
        entering="main",
        token="tok000000000",
        candidates=candidates,
        superseded=superseded,
    )
    if not use or (noop and not restoring):
        assert d.save is None and not d.replaces
        return
    assert d.save is not None and d.save not in keys
    assert d.keep == (destructive or mode == "always" or restoring)
    for key in d.replaces:
        h = next(h for h in candidates if h.key == key)
        assert h.branch == leaving and h.purpose == "branch" and key in superseded
    if not d.keep:
        assert d.replaces == ()
    assert (d.resave is not None) == (restoring and not noop)


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
