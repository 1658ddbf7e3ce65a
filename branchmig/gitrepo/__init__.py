"""The one home of git: every question branchmig asks git, and the few commands it runs
(checkout; init and commit for ``branchmig demo``), as named methods of ``GitRepo``. Git
runs nowhere else, always started by ``base.run_git`` with one scrubbed environment.

Reading is done with git plumbing (``cat-file --batch``, ``ls-tree``, ``rev-parse``), not
GitPython, because the hook and ``branchmig heads`` run on every checkout and must not pay
its import (~70 ms). ``GitRepo`` is made of one part per concern: ``objects`` (blobs,
trees), ``refs`` (HEAD, branches, the reflog), ``history`` (ancestry), ``worktree``
(status, checkout); ``files`` reads what git's files say without git.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from branchmig.errors import GitError, NotARepositoryError
from branchmig.gitrepo.base import last_line, run_git
from branchmig.gitrepo.files import (
    LOCATION_ENV_VARS,
    RepoFormat,
    absolute,
    blob_id,
    format_in_files,
    found_in_files,
    is_null_id,
)
from branchmig.gitrepo.history import History
from branchmig.gitrepo.objects import Objects, TreeEntry
from branchmig.gitrepo.refs import Refs
from branchmig.gitrepo.worktree import WorkTree

__all__ = [
    "GitRepo",
    "RepoFormat",
    "TreeEntry",
    "blob_id",
    "format_in_files",
    "is_null_id",
]


class GitRepo(Objects, Refs, History, WorkTree):
    """A git repository (working tree + git dirs)."""

    @classmethod
    def discover(cls, start: Path) -> GitRepo:
        """The repository holding ``start``: from the ``.git`` entries on the way up when
        they say it plainly (every command asks this first, and git costs 10 ms to
        start), from ``git rev-parse`` otherwise, which honours ``GIT_DIR`` and
        ``GIT_WORK_TREE`` as set by the caller (relative ones are relative to the current
        directory, as git has them)."""
        named = {
            name: os.path.abspath(value)
            for name in LOCATION_ENV_VARS
            if (value := os.environ.get(name))
        }
        found = None if named else found_in_files(start)
        if found is not None:
            repo = cls(*found)
        else:
            out = run_git(
                start,
                "rev-parse",
                "--show-toplevel",
                "--absolute-git-dir",
                "--git-common-dir",
                env=named,
            )
            if out.returncode != 0:
                raise NotARepositoryError(_not_a_repository(start, named, out.stderr))
            top, git_dir, common = out.stdout.decode(errors="surrogateescape").splitlines()[:3]
            if named:
                named = {"GIT_DIR": git_dir, "GIT_WORK_TREE": top}
            repo = cls(Path(top), Path(git_dir), absolute(start, common), env=named)
        if repo.format.ref_storage != "files":
            repo._git("rev-parse", "--git-dir")  # git's own refusal, when it cannot read it
        return repo

    @classmethod
    def init(cls, folder: Path, *, branch: str = "main") -> GitRepo:
        """A new repository in ``folder`` (created when missing), on ``branch``."""
        folder.mkdir(parents=True, exist_ok=True)
        out = run_git(folder, "init", "--quiet", f"--initial-branch={branch}")
        if out.returncode != 0:
            raise GitError(f"git init {folder} failed: {last_line(out.stderr)}")
        return cls.discover(folder)

    def __enter__(self) -> GitRepo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _not_a_repository(start: Path, named: Mapping[str, str], stderr: bytes) -> str:
    if named:
        given = ", ".join(f"{name}='{value}'" for name, value in named.items())
        return (
            f"{given} name no git repository git can open ({last_line(stderr)}); fix or unset them"
        )
    return f"'{start}' is not inside a git repository (git init, or cd into one)"
