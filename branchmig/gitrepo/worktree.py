"""The working tree: what is changed in it, checkouts (and putting back a checkout git
stopped part-way), and the few writes ``branchmig demo`` and the hooks need."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from pathlib import Path

from branchmig.errors import GitError
from branchmig.gitrepo.base import RepoBase
from branchmig.gitrepo.files import worktree_blob


class WorkTree(RepoBase):
    """The working tree and the index."""

    def dirty_paths(self, *under: str, staged: bool = True) -> list[str]:
        """Tracked files with uncommitted changes, and untracked files, relative to top
        (only those under the paths ``under`` names, when given). Without ``staged``, a
        change already staged counts only when the file has changed again since (during a
        merge or rebase, git stages its own). A renamed file is named by its new name."""
        out = self._git(
            "status",
            "--porcelain",
            "-z",
            "--untracked-files=all",
            *(["--", *under] if under else []),
        )
        paths = []
        records = iter(out.split("\0"))
        for rec in records:
            if not rec:
                continue
            status, path = rec[:2], rec[3:]
            if "R" in status or "C" in status:
                next(records, None)  # the old name is a record of its own
            if staged or status[1] != " ":
                paths.append(path)
        return paths

    def unmerged_paths(self, *under: str) -> list[str]:
        """Files with unresolved merge conflicts (only those under ``under``, when given)."""
        out = self._git(
            "diff", "--name-only", "-z", "--diff-filter=U", *(["--", *under] if under else [])
        )
        return [p for p in out.split("\0") if p]

    def checkout(
        self, ref: str, *, env: Mapping[str, str] | None = None, quiet: bool = True
    ) -> str:
        """``git checkout ref``; what git (and the hooks it ran) wrote to standard error."""
        proc = self._proc("checkout", *(["--quiet"] if quiet else []), ref, env=env)
        messages = proc.stderr.decode(errors="replace")
        if proc.returncode != 0:
            lines = [ln for ln in messages.strip().splitlines() if ln.strip()]
            raise GitError(f"git checkout {ref} failed: {lines[0] if lines else 'unknown error'}")
        return messages

    def undo_partial_checkout(self, head: str, target: str, *, since: float | None) -> int:
        """Put back what a ``git checkout target`` stopped part-way (HEAD still at
        ``head``) had written: each path that differs between the two commits and now
        holds the target's content is made as ``head`` has it again (a file only the
        target has is removed); the index is put back to ``head``'s entries for them. A
        path holding anything else is someone's own and is left as it is. An
        ``index.lock`` left by a killed git (made since ``since``; None: git was not
        killed) is removed first. How many files were put back."""
        lock = self.git_dir / "index.lock"
        with contextlib.suppress(FileNotFoundError):
            if since is not None and lock.stat().st_mtime >= since - 1:
                lock.unlink()
        out = self._git("diff", "--raw", "-z", "--no-renames", "--no-abbrev", head, target)
        fields = out.split("\0")
        changes: list[tuple[str, str, str]] = []  # (path, head's blob, target's blob)
        for meta, path in zip(fields[::2], fields[1::2], strict=False):
            if not meta.startswith(":"):
                break
            _, _, old, new, _ = meta[1:].split(" ", 4)
            changes.append((path, old, new))
        if not changes:
            return 0

        def listed(paths: Iterable[str]) -> bytes:
            return b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in paths)

        spec = ("--pathspec-from-file=-", "--pathspec-file-nul")
        self._git("reset", "-q", head, *spec, input=listed(path for path, _, _ in changes))
        absent = "0" * len(head)
        put_back, removed = [], 0
        for path, old, new in changes:
            found = worktree_blob(self.top / path, self.format.object_format)
            if found != (None if new == absent else new):
                continue  # as head has it, or not the target's: leave it
            if old == absent:
                (self.top / path).unlink()
                removed += 1
            else:
                put_back.append(path)
        if put_back:
            self._git("checkout", "-q", *spec, input=listed(put_back))
        return len(put_back) + removed

    def checkout_new_branch(self, name: str, start: str = "HEAD") -> None:
        self._git("checkout", "--quiet", "-b", name, start)

    def set_config(self, key: str, value: str) -> None:
        """Set ``key`` in this repository's own configuration."""
        self._git("config", key, value)

    def commit_all(self, message: str) -> None:
        """Stage every change in the working tree (new files too) and commit it."""
        self._git("add", "--all")
        self._git("commit", "--quiet", "--message", message)

    def hooks_dir(self) -> Path:
        """Where git looks for hooks: ``core.hooksPath`` (a relative one is relative to the
        top level, where git runs hooks), else the common git dir's ``hooks``, which linked
        worktrees share."""
        configured = self._git(
            "config", "--type=path", "--get", "core.hooksPath", check=False
        ).rstrip("\n")
        return self.top / configured if configured else self.common_dir / "hooks"
