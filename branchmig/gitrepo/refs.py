"""HEAD, branches, remotes and the HEAD reflog: read from the files of git's "files" ref
backend where they say it plainly, asked of git otherwise."""

from __future__ import annotations

import os
from pathlib import Path

from branchmig.gitrepo.base import RepoBase
from branchmig.gitrepo.files import checkout_move, is_object_id, plain_branch_name, read_small


class Refs(RepoBase):
    """Where HEAD and the branches are, and where they were."""

    # The hook asks these on every run that migrates or restores: each is answered from
    # the files of git's "files" ref backend when they say it plainly (HEAD, a loose
    # branch ref, the HEAD reflog), and by git otherwise (packed refs, reftable,
    # anything unusual), which a process costs 2-3 ms more.

    def _read_ref_file(self, path: Path) -> str | None:
        return read_small(path) if self._refs_in_files else None

    def head_commit(self) -> str | None:
        head = self._read_ref_file(self.git_dir / "HEAD")
        if head is not None and is_object_id(head):
            return head
        if head is not None and head.startswith("ref: refs/heads/"):
            found = self._loose_branch(head[len("ref: refs/heads/") :])
            if found is not None:
                return found
        out = self._git("rev-parse", "--verify", "--quiet", "HEAD", check=False).strip()
        return out or None

    def current_branch(self) -> str | None:
        head = self._read_ref_file(self.git_dir / "HEAD")
        if head is not None and is_object_id(head):
            return None  # detached
        if head is not None and head.startswith("ref: refs/heads/"):
            name = head[len("ref: refs/heads/") :]
            if plain_branch_name(name):
                return name
        out = self._git("symbolic-ref", "--quiet", "--short", "HEAD", check=False).strip()
        return out or None

    def is_branch(self, name: str) -> bool:
        if self._loose_branch(name) is not None:
            return True
        return bool(
            self._git("rev-parse", "--verify", "--quiet", f"refs/heads/{name}", check=False).strip()
        )

    def _loose_branch(self, name: str) -> str | None:
        """The commit of branch ``name`` when its loose ref file holds one (None: ask git;
        a loose ref, when there is one, is the branch's value, packed-refs or not)."""
        if not plain_branch_name(name):
            return None
        found = self._read_ref_file(self.common_dir / "refs" / "heads" / name)
        return found if found is not None and is_object_id(found) else None

    def all_ref_commits(self) -> list[tuple[tuple[str, ...], str]]:
        """(names, commit) of every commit a branch, remote branch or tag points at (all
        its names, sorted), then of the HEAD reflog's others (which still hold the commits
        of deleted branches, named ``HEAD@{n}``), newest first."""
        seen: dict[str, list[str]] = {}
        out = self._git(
            "for-each-ref",
            "--sort=-committerdate",
            "--format=%(objectname) %(*objectname) %(refname:short)",
            "refs/heads",
            "refs/remotes",
            "refs/tags",
        )
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3:
                commit, name = parts[1], parts[2]
            else:
                commit, name = parts[0], parts[-1]
            seen.setdefault(commit, []).append(name)
        reflog = self._git("reflog", "show", "--format=%H %gd", "HEAD", check=False)
        for line in reflog.splitlines():
            commit, _, name = line.partition(" ")
            seen.setdefault(commit, [name])
        return [(tuple(sorted(names)), commit) for commit, names in seen.items()]

    def remembered_commits(self) -> list[tuple[str, str]]:
        """(where, commit) of every commit git still remembers, each once, in the order a
        text that was replaced is best looked for: ORIG_HEAD, HEAD's reflog (newest
        first: an amended commit's earlier self is ``HEAD@{1}``), every branch's reflog,
        then every branch, remote branch and tag."""
        found: dict[str, str] = {}
        orig = self.commit_or_none("ORIG_HEAD")
        if orig is not None:
            found[orig] = "ORIG_HEAD"
        logs = self._git("reflog", "show", "--all", "--format=%H %gd", check=False)
        entries = [line.split(" ", 1) for line in logs.splitlines() if " " in line]
        # git lists the branches' reflogs first and HEAD's last: HEAD's come first here.
        for commit, where in sorted(entries, key=lambda e: not e[1].startswith("HEAD@{")):
            found.setdefault(commit, where)
        for names, commit in self.all_ref_commits():
            found.setdefault(commit, names[0])
        return [(where, commit) for commit, where in found.items()]

    def remote_default(self) -> tuple[str, str] | None:
        """(name, commit) of the remote's default branch: ``origin/HEAD`` as ``git clone``
        sets it, else ``origin/main``, else ``origin/master``; None without any."""
        out = self._git(
            "for-each-ref",
            "--format=%(refname:short) %(objectname) %(symref:short)",
            "refs/remotes/origin/HEAD",
            "refs/remotes/origin/main",
            "refs/remotes/origin/master",
            check=False,
        )
        found = {}
        for line in out.splitlines():
            name, commit, *target = line.split()
            found[name] = (target[0] if target else name, commit)
        for name in ("origin/HEAD", "origin/main", "origin/master"):
            if name in found:
                return found[name]
        return None

    def commit_or_none(self, ref: str) -> str | None:
        """The commit ``ref`` names (``ORIG_HEAD``, ``HEAD^1``…), None when it names none."""
        out = self._git(
            "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False
        ).strip()
        return out or None

    def last_checkout(self) -> tuple[str, str] | None:
        """(from, to) of the newest entry of this worktree's HEAD reflog when it is a
        checkout; None when it is something else or there is none. Read from the end of
        the file, without git, but for a reflog kept elsewhere (reftable). None on an
        unborn branch, as git has it (``checkout --orphan`` logs nothing)."""
        if self.head_commit() is None:
            return None
        if not self._refs_in_files:
            moves = self.checkouts(limit=1)
            return (moves[0][1], moves[0][2]) if moves else None
        path = self.git_dir / "logs" / "HEAD"
        try:
            with open(path, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(0, size - 8192))
                tail = fh.read()
        except FileNotFoundError:
            moves = self.checkouts(limit=1)
            return (moves[0][1], moves[0][2]) if moves else None
        except OSError:
            return None
        last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1].decode(errors="replace")
        _, tab, subject = last.partition("\t")
        return checkout_move(subject) if tab else None

    def checkouts(self, limit: int = 50) -> list[tuple[int, str, str]]:
        """(when, from, to) of this worktree's latest checkouts, newest first, from HEAD's
        reflog (among its ``limit`` latest entries): each side a branch name or a commit
        id, ``when`` in seconds since the epoch."""
        out = self._git(
            "reflog",
            "show",
            f"-n{limit}",
            "--date=unix",
            "--format=%gd%x00%gs",
            "HEAD",
            check=False,
        )
        moves = []
        for line in out.splitlines():
            selector, _, subject = line.partition("\0")
            move = checkout_move(subject)
            when = selector.rpartition("@{")[2].rstrip("}")
            if move is not None and when.isdigit():
                moves.append((int(when), *move))
        return moves

    def reflog_size(self) -> int:
        """The size of this worktree's HEAD reflog: an offset to read later entries from
        (-1 where the reflog is no file: then none is known)."""
        if not self._refs_in_files:
            return -1
        try:
            return (self.git_dir / "logs" / "HEAD").stat().st_size
        except OSError:
            return 0

    def checkouts_after(self, offset: int) -> list[tuple[str, str]] | None:
        """(from, to) of the checkouts logged after ``offset`` of HEAD's reflog, oldest
        first; None when the reflog no longer reaches that far (expired, rewritten). Read
        from the file, without git: the hook's move asks on every run (None where the
        reflog is no file: reftable)."""
        if offset < 0 or not self._refs_in_files:
            return None
        try:
            with open(self.git_dir / "logs" / "HEAD", "rb") as fh:
                if offset > fh.seek(0, os.SEEK_END):
                    return None
                fh.seek(offset)
                data = fh.read()
        except OSError:
            return None
        moves = []
        for line in data.decode(errors="replace").splitlines():
            _, tab, subject = line.partition("\t")
            move = checkout_move(subject) if tab else None
            if move is not None:
                moves.append(move)
        return moves

    def head_reflog(self, limit: int) -> list[tuple[str, str]]:
        """(commit, subject) of HEAD's ``limit`` latest reflog entries, newest first: the
        subject as git wrote it (``rebase (finish): returning to refs/heads/x``)."""
        out = self._git("reflog", "show", "-n", str(limit), "--format=%H %gs", "HEAD", check=False)
        entries = []
        for line in out.splitlines():
            commit, _, subject = line.partition(" ")
            entries.append((commit, subject))
        return entries

    def upstream(self) -> str | None:
        """The current branch's upstream (``origin/main``), None without one."""
        out = self._git(
            "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}", check=False
        ).strip()
        return out or None

    def rebasing_branch(self) -> str | None:
        """The branch a rebase in progress is replaying (HEAD is detached meanwhile)."""
        try:
            ref = (self.git_dir / "rebase-merge" / "head-name").read_text().strip()
        except OSError:
            return None
        return ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
