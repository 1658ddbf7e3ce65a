"""Close a merge that left several Alembic heads: one merge revision written by Alembic
itself, or (``rebase``) a linear history by re-pointing this branch's first migration onto
the other head. Then bring the database to the result.

Which side is "ours" when linearising (what ``rebase=True`` re-points):

- a merge in progress (``MERGE_HEAD`` exists): ours is ``HEAD``, theirs ``MERGE_HEAD``;
- a rebase in progress (``rebase-merge/`` or ``rebase-apply/`` in the git dir, as in the
  post-rewrite hook): ours is ``orig-head`` (the branch being replayed), theirs ``onto``;
- just after a rebase (the newest HEAD reflog entry is a rebase's ``(finish)``): ours is
  ``ORIG_HEAD`` (the branch before it was replayed), theirs the commit the rebase started
  from (its ``(start)`` reflog entry);
- after a merge commit (HEAD, else the newest merge on the first-parent line): ours is its
  first parent (what HEAD was before ``git merge``), theirs its second;
- else (a squash merge, or nothing recorded): ours is the head already committed at HEAD
  when the other one is not;
- but when only ours is on the remote's default branch (``origin/HEAD``, else
  ``origin/main`` or ``origin/master``), theirs moves instead: a migration the shared
  branch has may be deployed, and is never re-pointed.

Our head is the one present in ours' migrations and absent from theirs'. Git's merge and
rebase swap the roles of HEAD, hence the two rules: after ``git merge X`` the branch you
were on moves onto X's migrations; after ``git rebase X`` the replayed branch moves onto
X's, which is what rebasing it means.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from branchmig.alembicenv import alembic_env
from branchmig.errors import BranchmigError, GitError, GraphError, ScriptError, UsageError
from branchmig.graph import Graph, Revision
from branchmig.move.commands import sync
from branchmig.process import Progress
from branchmig.workspace import WORKTREE, Workspace

if TYPE_CHECKING:
    from branchmig.gitrepo import GitRepo
    from branchmig.move.result import MoveResult


_CONFLICT_MARKER = re.compile(rb"^(<{7}|>{7})(?: |$)", re.M)
_REVISES = re.compile(rb"^(Revises:[ \t]*)([^\r\n]*)", re.M)


@dataclass(frozen=True)
class MergeOutcome:
    heads_before: tuple[str, ...]
    written: str | None  # repo-relative path of the new merge revision, or the re-pointed script
    revision: str | None  # the new merge revision id, or the re-pointed revision id
    rebased_onto: str | None  # with rebase: the head it now sits on
    move: MoveResult | None  # the upgrade that followed (a sync); None when not upgraded
    dry_run: bool
    summary: str  # what was written, or why nothing was: one line
    then: str = ""  # once written: where the database is, and to commit the file

    @property
    def upgraded(self) -> tuple[str, ...]:
        """The database's heads after the upgrade; () when not upgraded."""
        return self.move.after if self.move is not None else ()


def _quiet(_: str) -> None:
    return None


def merge_heads(
    ws: Workspace,
    *,
    message: str | None = None,
    rebase: bool = False,
    upgrade: bool = True,
    dry_run: bool = False,
    heads: Sequence[str] = (),
    progress: Progress = _quiet,
) -> MergeOutcome:
    """Close a merge that left several heads in the working tree's graph.

    Without ``rebase``: write one merge revision of the heads through
    ``alembic.command.merge`` (so the project's template, ``file_template`` and post-write
    hooks apply). With ``rebase`` (two heads only): set the ``down_revision`` of our side's
    first migration to the other head (see the module docstring for which side is ours),
    rewriting only that assignment and the ``Revises:`` line. Then, unless ``upgrade`` is
    false or ``dry_run``, sync the database to the new graph (a re-pointed revision the
    database had applied is reverted and re-applied).

    Heads under separate branch labels are left alone unless named in ``heads``; named
    heads are merged exactly.
    """
    locations = ws.project.locations().version_locations
    _check_conflicts(ws.repo, locations)
    _, graph = ws.graph_at(WORKTREE)
    graph.check()
    all_heads = graph.heads
    chosen, why_not = _choose_heads(graph, heads)
    if len(chosen) < 2:
        return MergeOutcome(all_heads, None, None, None, None, dry_run, why_not)
    if rebase:
        return _rebase(
            ws, graph, chosen, locations, upgrade=upgrade, dry_run=dry_run, progress=progress
        )
    text = message or _default_message(ws.repo, graph, chosen)
    listed = ", ".join(f"'{h}'" for h in chosen)
    if dry_run:
        return MergeOutcome(
            all_heads,
            None,
            None,
            None,
            None,
            True,
            f"Dry run: would write a merge revision of {listed} "
            f"(message '{text}'); nothing written",
        )
    path, rev_id = _write_merge_revision(ws, chosen, text, progress)
    summary = f"Wrote merge revision '{rev_id}' ({path}) of {listed}."
    moved = _upgrade(ws, upgrade, progress, previous=None)
    return MergeOutcome(
        all_heads, path, rev_id, None, moved, False, summary, _upgrade_note(moved, path)
    )


# -- which heads ---------------------------------------------------------------------------


def _choose_heads(graph: Graph, named: Sequence[str]) -> tuple[tuple[str, ...], str]:
    """The heads to close, or () and why there is nothing to do."""
    heads = graph.heads
    if named:
        chosen: list[str] = []
        for name in named:
            try:
                rev_id = graph.resolve(name)
            except GraphError as err:
                raise UsageError(
                    f"'{name}' is not a revision in the working tree's migrations "
                    f"(heads: {_quote(heads)})"
                ) from err
            if rev_id not in heads:
                raise UsageError(f"'{name}' is not a head (heads: {_quote(heads)})")
            if rev_id not in chosen:
                chosen.append(rev_id)
        if len(chosen) < 2:
            raise UsageError(f"Name at least two heads to merge (heads: {_quote(heads)})")
        return tuple(chosen), ""
    if len(heads) < 2:
        return (), (
            f"Nothing to merge: one head, '{heads[0]}'"
            if heads
            else "Nothing to merge: no migrations"
        )
    groups: dict[frozenset[str], list[str]] = {}
    for head in heads:
        groups.setdefault(graph.labels_of(head), []).append(head)
    crowded = [tuple(g) for g in groups.values() if len(g) > 1]
    if not crowded:
        described = ", ".join(
            f"'{h}' ({', '.join(sorted(graph.labels_of(h))) or 'no label'})" for h in heads
        )
        return (), (
            f"Nothing to merge: heads {described} are under separate branch labels; "
            f"to merge them anyway, run: branchmig merge-heads {' '.join(heads)}"
        )
    if len(crowded) > 1:
        raise UsageError(
            "Several branch labels have more than one head ("
            + "; ".join(_quote(g) for g in crowded)
            + "); name the heads to merge: branchmig merge-heads HEAD1 HEAD2"
        )
    return crowded[0], ""


def _quote(ids: Sequence[str]) -> str:
    return ", ".join(f"'{i}'" for i in ids)


# -- checks -------------------------------------------------------------------------------


def _check_conflicts(repo: GitRepo, locations: Sequence[str]) -> None:
    unmerged = repo.unmerged_paths(*locations)
    if not unmerged:
        for location in locations:
            root = repo.top / location
            if not root.is_dir():
                continue
            for path in sorted(root.rglob("*.py")):
                if "__pycache__" in path.parts:
                    continue
                with contextlib.suppress(OSError):
                    if _CONFLICT_MARKER.search(path.read_bytes()):
                        unmerged.append(path.relative_to(repo.top).as_posix())
    if unmerged:
        raise GitError(
            f"Merge conflicts in the versions folder ({', '.join(unmerged[:3])}"
            f"{', …' if len(unmerged) > 3 else ''}); resolve them and 'git add' the files, "
            "then run: branchmig merge-heads"
        )


def _check_clean_for_rebase(repo: GitRepo, locations: Sequence[str], in_progress: bool) -> None:
    """Uncommitted changes in the versions folder would be mixed into the re-pointed
    script; during a merge or rebase, what git staged itself is expected."""
    changed = repo.dirty_paths(*locations, staged=not in_progress)
    dirty = sorted({p for p in changed if "__pycache__/" not in p})
    if dirty:
        raise GitError(
            f"Uncommitted changes in the versions folder ({', '.join(dirty[:3])}"
            f"{', …' if len(dirty) > 3 else ''}); commit them first, then run: "
            "branchmig merge-heads --rebase"
        )


# -- merge revision ----------------------------------------------------------------------


def _write_merge_revision(
    ws: Workspace, heads: Sequence[str], message: str, progress: Progress
) -> tuple[str, str]:
    from alembic import command

    out = io.StringIO()
    with alembic_env(ws.project) as env, contextlib.redirect_stdout(out):
        try:
            script = command.merge(env.config, revisions=list(heads), message=message)
        except BranchmigError:
            raise
        except Exception as err:  # noqa: BLE001 - alembic.util.CommandError, template errors
            raise ScriptError(
                f"Alembic could not write the merge revision: "
                f"{str(err).splitlines()[0] if str(err) else err!r}"
            ) from err
    for line in out.getvalue().splitlines():
        if line.strip():
            progress(f"alembic: {line.strip()}")
    if script is None:  # pragma: no cover - only when a hook cancels the revision
        raise ScriptError(
            "Alembic wrote no merge revision (a process_revision_directives "
            "hook in env.py cancelled it)"
        )
    return _relative(ws, Path(script.path)), str(script.revision)


def _relative(ws: Workspace, path: Path) -> str:
    return Path(os.path.relpath(path.resolve(), ws.repo.top.resolve())).as_posix()


def _default_message(repo: GitRepo, graph: Graph, heads: Sequence[str]) -> str:
    """'merge feature1 and feature2 heads', naming for each head the branch that brought
    it (other than the current one when another has it); else 'merge heads a, b'."""
    names = [_branch_of(repo, graph.revisions[h]) for h in heads]
    if all(names) and len(set(names)) == len(names):
        listed = [n for n in names if n]
        return f"merge {', '.join(listed[:-1])} and {listed[-1]} heads"
    return f"merge heads {', '.join(heads)}"


def _branch_of(repo: GitRepo, rev: Revision) -> str | None:
    starts = ["HEAD"]
    for special in ("MERGE_HEAD", "REBASE_HEAD"):
        if (repo.git_dir / special).exists():
            starts.append(special)
    added = next(filter(None, (repo.commit_adding(rev.path, start) for start in starts)), None)
    if added is None:
        return None
    current = repo.current_branch()
    for refs in ("refs/heads", "refs/remotes"):
        names = [
            n for n in repo.refs_containing(added, refs) if n != current and not n.endswith("/HEAD")
        ]
        if names:
            # The branch where the commit sits nearest the tip brought it.
            return min(names[:20], key=lambda n: repo.count_commits(added, n))
    return current


# -- rebase ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sides:
    ours: str | None  # commit whose migrations are ours
    theirs: str | None
    how: str
    in_progress: bool = False
    joined: str | None = None  # the merge commit that joined the two sides


def _git_sides(repo: GitRepo) -> _Sides:
    git_dir = repo.git_dir
    head = repo.head_commit()
    merge_head = git_dir / "MERGE_HEAD"
    if merge_head.exists():
        return _Sides(
            head, merge_head.read_text().split()[0], "the merge in progress", in_progress=True
        )
    for folder in ("rebase-merge", "rebase-apply"):
        state = git_dir / folder
        if (state / "orig-head").exists():
            onto = state / "onto"
            return _Sides(
                _read_first(state / "orig-head"),
                _read_first(onto) if onto.exists() else None,
                "the rebase in progress",
                in_progress=True,
            )
    reflog = repo.head_reflog(200)
    if reflog and "rebase" in reflog[0][1] and "(finish)" in reflog[0][1]:
        started = next(
            (commit for commit, subject in reflog if "rebase" in subject and "(start)" in subject),
            None,
        )
        return _Sides(repo.commit_or_none("ORIG_HEAD"), started, "the rebase just done")
    merge = repo.latest_merge("HEAD") if head else None
    if merge:
        parents = repo.parents(merge)
        return _Sides(
            parents[0],
            parents[1],
            "the merge commit" if merge == head else f"merge commit {merge[:12]}",
            joined=merge,
        )
    return _Sides(head, None, "HEAD")


def _read_first(path: Path) -> str | None:
    words = path.read_text().split()
    return words[0] if words else None


@dataclass(frozen=True)
class _Move:
    ours: str  # the head whose first migration is re-pointed
    theirs: str  # the head it is re-pointed onto
    reason: str
    in_progress: bool  # a merge or rebase git has not finished


def _which_moves(ws: Workspace, pair: tuple[str, ...]) -> _Move:
    """Ours moves onto theirs: the side git's merge or rebase says is ours, unless only
    ours is on the remote's default branch already."""
    sides = _git_sides(ws.repo)
    ours_ids = _ids_at(ws, sides.ours)
    theirs_ids = _ids_at(ws, sides.theirs)
    mine = [h for h in pair if h in ours_ids and h not in theirs_ids]
    if sides.joined and not set(pair) <= _ids_at(ws, sides.joined):
        mine = []  # an older merge that did not bring these heads together
    if len(mine) != 1 and sides.how != "HEAD":
        # The recorded sides do not separate the heads (they predate the merge): fall back
        # to what is committed here.
        head_ids = _ids_at(ws, ws.repo.head_commit())
        mine = [h for h in pair if h in head_ids]
    if len(mine) != 1:
        raise GitError(
            f"Cannot tell which of the heads {_quote(pair)} is this branch's (found "
            f"no merge or rebase that brought one of them); use a merge revision: "
            "branchmig merge-heads"
        )
    ours = mine[0]
    theirs = next(h for h in pair if h != ours)
    published = ws.repo.remote_default()
    if published is not None:
        # A migration the shared branch has may be deployed already: it never moves.
        remote, commit = published
        shared = _ids_at(ws, commit)
        if ours in shared and theirs not in shared:
            return _Move(theirs, ours, f"'{ours}' is on {remote} already", sides.in_progress)
    return _Move(ours, theirs, f"ours per {sides.how}", sides.in_progress)


def _ids_at(ws: Workspace, commit: str | None) -> frozenset[str]:
    if not commit:
        return frozenset()
    return frozenset(r.id for r in ws.scripts_at_commit(commit).revisions)


def _first_of_side(graph: Graph, ours: str, theirs: str) -> Revision:
    """Our side's first migration above the common ancestors of the two heads."""
    side = graph.ancestors([ours], dependencies=False) - graph.ancestors(
        [theirs], dependencies=False
    )
    roots = [
        r for r in graph.topological(side) if not any(p in side for p in graph.revisions[r].down)
    ]
    if len(roots) != 1:
        raise GraphError(
            f"Head '{ours}' has {len(roots)} first migrations above the common revisions "
            f"({_quote(roots)}); re-point them by hand or run: branchmig merge-heads"
        )
    first = graph.revisions[roots[0]]
    if len(first.down) > 1:
        raise GraphError(
            f"'{first.id}' ({first.path}) is itself a merge of {_quote(first.down)}; "
            "use a merge revision: branchmig merge-heads"
        )
    return first


def _rebase(
    ws: Workspace,
    graph: Graph,
    pair: tuple[str, ...],
    locations: Sequence[str],
    *,
    upgrade: bool,
    dry_run: bool,
    progress: Progress,
) -> MergeOutcome:
    all_heads = graph.heads
    if len(pair) != 2:
        raise UsageError(
            f"--rebase linearises two heads; there are {len(pair)} ({_quote(pair)}). "
            "Write one merge revision of them all instead: branchmig merge-heads"
        )
    move = _which_moves(ws, pair)
    theirs, reason = move.theirs, move.reason
    first = _first_of_side(graph, move.ours, theirs)
    old = first.down[0] if first.down else "base"
    where = f"'{first.id}' ({first.path}) from '{old}' onto '{theirs}'"
    _check_clean_for_rebase(ws.repo, locations, move.in_progress)
    if dry_run:
        return MergeOutcome(
            all_heads,
            first.path,
            first.id,
            theirs,
            None,
            True,
            f"Dry run: would re-point {where} ({reason}); nothing written",
        )
    path = ws.repo.top / first.path
    path.write_bytes(repoint_down_revision(path.read_bytes(), theirs, path=first.path))
    progress(f"branchmig: re-pointed {where}")
    # HEAD still has the script as the database may have applied it: reverting it with
    # that text is what the changed-script rule needs when branchmig kept no copy.
    moved = _upgrade(ws, upgrade, progress, previous=ws.repo.head_commit())
    summary = f"Re-pointed {where} ({reason}); history is linear."
    return MergeOutcome(
        all_heads,
        first.path,
        first.id,
        theirs,
        moved,
        False,
        summary,
        _upgrade_note(moved, first.path),
    )


def repoint_down_revision(data: bytes, new_down: str, *, path: str = "<script>") -> bytes:
    """``data`` with its ``down_revision`` set to ``new_down`` and its docstring's
    ``Revises:`` line to match; every other byte is kept (quote style included)."""
    try:
        module = ast.parse(data)
    except (SyntaxError, ValueError) as err:
        raise ScriptError(f"{path}: cannot parse the script to re-point it: {err}") from err
    value: ast.expr | None = None
    quote = b"'"
    for stmt in module.body:
        target: ast.expr | None = None
        stmt_value: ast.expr | None = None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, stmt_value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign):
            target, stmt_value = stmt.target, stmt.value
        if not isinstance(target, ast.Name) or stmt_value is None:
            continue
        if target.id == "revision":
            found = re.search(rb"['\"]", _slice(data, stmt_value))
            quote = found.group() if found else quote
        elif target.id == "down_revision":
            value = stmt_value
    if value is None:
        raise ScriptError(f"{path}: no down_revision assignment to re-point")
    old = _slice(data, value)
    found = re.search(rb"['\"]", old)
    if found:
        quote = found.group()
    literal = quote + new_down.encode() + quote
    if isinstance(value, ast.Tuple | ast.List) and len(value.elts) == 1:
        literal = b"(" + literal + b",)" if isinstance(value, ast.Tuple) else b"[" + literal + b"]"
    elif not (
        isinstance(value, ast.Constant) and (value.value is None or isinstance(value.value, str))
    ):
        raise ScriptError(
            f"{path}:{value.lineno}: down_revision is not a single revision; re-point it by hand"
        )
    start, end = _offsets(data, value)
    result = data[:start] + literal + data[end:]
    doc = module.body[0] if module.body else None
    if (
        isinstance(doc, ast.Expr)
        and isinstance(doc.value, ast.Constant)
        and isinstance(doc.value.value, str)
        and doc.lineno < value.lineno
    ):
        d_start, d_end = _offsets(data, doc.value)
        text = result[d_start:d_end]
        text = _REVISES.sub(
            lambda m: (
                m.group(1)
                + (b"" if m.group(1).endswith((b" ", b"\t")) else b" ")
                + new_down.encode()
            ),
            text,
            count=1,
        )
        result = result[:d_start] + text + result[d_end:]
    return result


def _line_starts(data: bytes) -> list[int]:
    starts = [0]
    for match in re.finditer(rb"\n", data):
        starts.append(match.end())
    return starts


def _offsets(data: bytes, node: ast.expr) -> tuple[int, int]:
    starts = _line_starts(data)
    assert node.end_lineno is not None and node.end_col_offset is not None
    return (
        starts[node.lineno - 1] + node.col_offset,
        starts[node.end_lineno - 1] + node.end_col_offset,
    )


def _slice(data: bytes, node: ast.expr) -> bytes:
    start, end = _offsets(data, node)
    return data[start:end]


# -- the database ---------------------------------------------------------------------------


def _upgrade(
    ws: Workspace, upgrade: bool, progress: Progress, previous: str | None
) -> MoveResult | None:
    """The database brought to the merged scripts by a sync (None: not asked); its result
    is the merge's, rendered as a sync's."""
    if not upgrade:
        return None

    return sync(ws, previous=previous, progress=progress)


def _upgrade_note(moved: MoveResult | None, path: str) -> str:
    commit = f"commit it: git add {path} && git commit"
    if moved is None:
        return f"Database not upgraded (run: branchmig sync); {commit}"
    return f"Database now at {_quote(moved.after) or 'base'}; {commit}"
