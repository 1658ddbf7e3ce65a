"""Where the live database and its snapshots come from: the branch the database belongs
to, found from branchmig's own record of its last move, the hook's arguments and the
reflog; and the snapshots of this database as the lifecycle's decisions see them. Reads
git and ``.git/branchmig``; decides nothing (``lifecycle`` does)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from branchmig.errors import BranchmigError, SnapshotError
from branchmig.graph import Graph, Revision
from branchmig.lifecycle import Held, Text, applied_texts, mismatch, restorers, unsure
from branchmig.state import DatabaseId, Owner, SnapshotRecord, State
from branchmig.workspace import Workspace


def blobs_of(graph: Graph, revisions: Sequence[str] | None = None) -> dict[str, str]:
    """Revision id -> script blob id, for ``revisions`` (default: all of ``graph``)."""
    ids = graph.revisions if revisions is None else revisions
    return {r: graph.revisions[r].blob for r in ids if r in graph.revisions}


def owner_of_database(
    ws: Workspace,
    state: State,
    dbid: DatabaseId,
    heads: tuple[str, ...],
    *,
    hint: str | None,
    hint_commit: str | None,
) -> Owner:
    """The branch (exact name) and commit the database at ``heads`` belongs to. In order:
    ``hint`` (the branch a checkout left, the branch a switch or merge runs on) when it is
    branchmig's record of its last move on this database; the record, back on its branch
    with the heads it left; then ``hint``, the branches of the latest checkouts and the
    current one: the first whose tip holds every head. When none holds them (a ``reset
    --hard`` moved the branch away), the record still names the branch and commit the
    rows were written on; only with no record at all is the owner unknown (None).

    A checkout with no hook run moves no rows. So a guess never names a branch whose
    own snapshot, saved on leaving it, still fits its tip: entering that branch through
    branchmig would have restored the snapshot, so the live rows are not its, and the
    save that follows would replace the snapshot that holds them."""
    repo = ws.repo
    record = _recorded_owner(state, dbid)
    unchanged = record is not None and set(record.heads) == set(heads)
    if hint is not None and record is not None and record.branch == hint and unchanged:
        return Owner(hint, hint_commit or record.commit, heads)  # the usual case: no git
    # Back on the branch branchmig left the database on, its heads as it left them: what
    # was checked out meanwhile moved no rows (a hook that moved them would have written
    # the record), or shared them (a checkout to the same scripts).
    here = repo.current_branch() if unchanged else None
    if here is not None and record is not None and record.branch == here:
        return Owner(here, record.commit, heads)
    tips = _Tips(ws, state, dbid, heads, record.branch if record else None)
    if hint is not None and (tip := tips.holding(hint, hint_commit)):
        return Owner(hint, tip, heads)
    # Checked out since branchmig last moved the database (no hook ran, or it was
    # killed): the rows were those of the branch the latest checkout left, or of the one
    # it entered where the hook passes such a checkout by (the same scripts, another
    # commit, no snapshot of its own waiting): the database went along.
    since = repo.checkouts_after(record.reflog) if record and record.reflog >= 0 else None
    if since:
        left, entered = since[-1]
        if tip := tips.holding(left):
            if (went := tips.holding(entered)) and tips.passed_by(tip, went):
                return Owner(entered, went, heads)
            return Owner(left, tip, heads)
    moves = repo.checkouts()
    if since is None and moves and (record is None or moves[0][0] > int(record.at)):
        left = moves[0][1]
        if tip := tips.holding(left):
            return Owner(left, tip, heads)
    if record is not None and record.branch is not None:
        if unchanged:
            return Owner(record.branch, record.commit, heads)
        if tip := tips.holding(record.branch):
            return Owner(record.branch, tip, heads)
    seen: set[str] = set()
    for _, left, entered in moves:
        for name in (entered, left):
            if name not in seen:
                seen.add(name)
                if tip := tips.holding(name):
                    return Owner(name, tip, heads)
    current = repo.current_branch()
    if tip := tips.holding(current):
        return Owner(current, tip, heads)
    if record is not None:
        return Owner(record.branch, record.commit, heads)
    return Owner(None, hint_commit or repo.head_commit(), heads)


class _Tips:
    """The branches' tips and their scripts, read once each, for ``owner_of_database``'s
    guesses about whose rows the database at ``heads`` holds."""

    def __init__(
        self,
        ws: Workspace,
        state: State,
        dbid: DatabaseId,
        heads: tuple[str, ...],
        recorded: str | None,
    ) -> None:
        self.ws, self.state, self.dbid, self.heads = ws, state, dbid, heads
        self.recorded = recorded
        self._tips: dict[str, str] | None = None
        self._scripts: dict[str, dict[str, str] | None] = {}
        self._held: list[Held] | None = None

    def scripts(self, commit: str) -> dict[str, str] | None:
        """Revision id -> blob id at ``commit``; None when its scripts cannot be read."""
        if commit not in self._scripts:
            try:
                revisions = self.ws.scripts_at_commit(commit).revisions
            except BranchmigError:
                self._scripts[commit] = None
            else:
                self._scripts[commit] = {r.id: r.blob for r in revisions}
        return self._scripts[commit]

    def holding(self, branch: str | None, commit: str | None = None) -> str | None:
        """The tip of ``branch`` (or ``commit``) when it holds every head and the rows can
        be the branch's (no snapshot of its own waits to be restored on entering it)."""
        if not branch:
            return None
        if commit is None:
            if self._tips is None:
                self._tips = self.ws.repo.branch_tips()
            commit = self._tips.get(branch)
        if commit is None or not self.heads:
            return commit
        scripts = self.scripts(commit)
        if scripts is None or not all(h in scripts for h in self.heads):
            return None
        return None if self.waiting(branch, scripts) else commit

    def waiting(self, branch: str, scripts: Mapping[str, str]) -> bool:
        """Whether ``branch`` (not the one branchmig last moved the database on) has a
        snapshot saved on leaving it that fits ``scripts``, its tip's."""
        if branch == self.recorded:
            return False
        if self._held is None:
            self._held = held_snapshots(self.state, self.dbid)
        return any(
            h.branch == branch and h.purpose == "branch" and not mismatch(h, scripts)
            for h in self._held
        )

    def passed_by(self, left: str, entered: str) -> bool:
        """Whether the hook changes nothing on a checkout from commit ``left`` to commit
        ``entered`` (both branches' tips, neither waiting): other commits, same scripts."""
        return left != entered and self.scripts(left) == self.scripts(entered)


def _recorded_owner(state: State, dbid: DatabaseId) -> Owner | None:
    """branchmig's record of its last move on this database, under its key or an alias."""
    record = state.owner(dbid.key)
    for alias in dbid.aliases:
        record = record or state.owner(alias)
    return record


def held_snapshots(state: State, dbid: DatabaseId) -> list[Held]:
    """This database's snapshots in the index, with what each holds."""
    return [
        Held(
            key=r.key,
            branch=r.branch,
            commit=r.commit,
            heads=tuple(r.heads),
            applied=state.snapshot_applied(r.key),
            created=r.created,
            purpose=r.purpose,
        )
        for r in state.snapshots()
        if r.database in dbid.keys
    ]


def find_snapshot(state: State, dbid: DatabaseId, name: str) -> SnapshotRecord:
    """This database's snapshot ``name``: its key, or a branch with one snapshot."""
    records = [r for r in state.snapshots() if r.database in dbid.keys]
    for record in records:
        if record.key == name:
            return record
    by_branch = [r for r in records if r.branch == name]
    if len(by_branch) == 1:
        return by_branch[0]
    known = ", ".join(r.key for r in records) or "none"
    raise SnapshotError(
        f"No snapshot '{name}' of this database (known: {known}); see: branchmig snapshot list"
    )


def strays_among(ws: Workspace, held: Sequence[Held]) -> set[str]:
    """The keys of ``held`` that their own branch would not restore: the branch is
    deleted, or its tip's scripts no longer hold what the snapshot holds."""
    tips = ws.repo.branch_tips() if held else {}
    strays = set()
    for snap in held:
        tip = tips.get(snap.branch) if snap.branch is not None else None
        if tip is None or mismatch(snap, tip_blobs(ws, tip)):
            strays.add(snap.key)
    return strays


def restored_by(ws: Workspace, held: Sequence[Held]) -> dict[str, tuple[str, ...]]:
    """Each snapshot's key -> the branches whose checkout would restore it
    (``lifecycle.restorers``; empty: none would). The one answer ``status``, ``snapshot
    list`` and ``prune`` share. A fixed number of git runs whatever the number of
    snapshots: the tips' folders in two, the branches holding each orphaned snapshot's
    commit in two more; scripts read before come from the cache."""
    if not held:
        return {}
    tips = ws.repo.branch_tips()
    known: dict[str, Mapping[str, str]] = {}

    def revisions(names: Iterable[str]) -> dict[str, Mapping[str, str]]:
        wanted = [n for n in names if n in tips and n not in known]
        ws.prefetch(tips[n] for n in wanted)
        for name in wanted:
            known[name] = tip_blobs(ws, tips[name])
        return {name: known[name] for name in names if name in known}

    own = revisions(sorted({h.branch for h in held if h.branch is not None}))
    found = {h.key: tuple(restorers(h, own, {})) for h in held}
    # Not restored by its own branch: any branch on its line (renamed, made from it)?
    orphans = [h for h in held if not found[h.key] and h.commit]
    if orphans:
        containing = ws.repo.branches_containing_each((h.commit or "" for h in orphans), tips)
        tips_of = revisions(sorted({n for names in containing.values() for n in names}))
        for h in orphans:
            on_line = containing.get(h.commit or "", [])
            found[h.key] = tuple(
                restorers(
                    h,
                    {n: tips_of[n] for n in on_line if n in tips_of},
                    {n: {h.commit or ""} for n in on_line},
                )
            )
    return found


def tip_blobs(ws: Workspace, commit: str) -> Mapping[str, str]:
    try:
        return {r.id: r.blob for r in ws.scripts_at_commit(commit).revisions}
    except BranchmigError:
        return {}


def on_line(ws: Workspace, held: Sequence[Held], commit: str | None) -> set[str]:
    """The keys of ``held`` taken on a commit that ``commit``'s history holds."""
    if commit is None:
        return set()
    return {h.key for h in held if h.commit is not None and ws.repo.is_ancestor(h.commit, commit)}


def texts_in_git(
    ws: Workspace,
    wanted: Collection[str],
    *,
    previous: str | None,
    target: Graph | None = None,
    target_is: str = "the working tree",
) -> dict[str, list[Text]]:
    """Every distinct text git still holds of the scripts of ``wanted`` revisions, in the
    order ``applied_texts`` tries them: the commit the database followed (``previous``),
    the ``target``, then ORIG_HEAD, the reflogs (newest first) and the refs. Each
    commit's folders are signed in two git runs; scripts read before come from the
    cache."""
    found: dict[str, list[Text]] = {r: [] for r in wanted}
    if not found:
        return found

    def add(where: str, revisions: Iterable[Revision]) -> None:
        for rev in revisions:
            texts = found.get(rev.id)
            if texts is not None and all(t.revision.blob != rev.blob for t in texts):
                texts.append(Text(rev, where))

    commits = [*([("the previous HEAD", previous)] if previous else [])]
    remembered = ws.repo.remembered_commits()
    ws.prefetch(c for _, c in [*commits, *remembered])
    for where, commit in commits:
        add(where, _revisions_at(ws, commit))
    if target is not None:
        add(target_is, target.revisions.values())
    for where, commit in remembered:
        add(where, _revisions_at(ws, commit))
    return found


def _revisions_at(ws: Workspace, commit: str) -> tuple[Revision, ...]:
    try:
        return tuple(ws.scripts_at_commit(commit).revisions)
    except BranchmigError:
        return ()  # a broken old commit must not stop the search


def candidate_texts(
    ws: Workspace,
    recorded: Mapping[str, Revision],
    revision: str,
    *,
    previous: str | None,
    target: Graph | None,
    target_is: str = "the working tree",
) -> tuple[Text, ...]:
    """The texts a revert of ``revision`` may try, in order (``applied_texts``):
    ``recorded`` is branchmig's record of what the database has applied."""
    mine = recorded.get(revision)
    found = texts_in_git(ws, [revision], previous=previous, target=target, target_is=target_is)
    own = Text(mine, "branchmig's record") if mine is not None else None
    return applied_texts(own, found[revision])


def unsure_texts(
    ws: Workspace,
    recorded: Mapping[str, Revision],
    applied: Collection[str],
    *,
    target: Graph | None,
) -> dict[str, tuple[Text, ...]]:
    """The ``applied`` revisions whose text nothing vouches for (``lifecycle.unsure``):
    not in branchmig's record, and git holds several texts of their script."""
    found = texts_in_git(
        ws, [r for r in applied if r not in recorded], previous=None, target=target
    )
    return {r: tuple(texts) for r, texts in found.items() if unsure(None, texts)}
