"""Git started, always the same way: ``run_git`` with one scrubbed environment; and the
base every part of ``GitRepo`` shares (where the repository is, its format, ``_git``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from branchmig.errors import GitError
from branchmig.gitrepo.files import RepoFormat, blob_id, format_in_files

if TYPE_CHECKING:
    import subprocess


# Set by the caller to say where the repository is: a hook runs with some of them set by the
# outer git, and they would point our calls (which name the repo with -C) elsewhere.
_REPO_ENV_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_PREFIX",
)


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REPO_ENV_VARS}
    env["LC_ALL"] = "C"
    # No lock git may skip: `git status` would otherwise take index.lock to write back
    # what it refreshed, and a branchmig killed then (a Ctrl-C or kill of the terminal's
    # process group) would leave the lock behind, failing every git command after it.
    env["GIT_OPTIONAL_LOCKS"] = "0"
    env.update(extra or {})
    return env


def run_git(
    cwd: Path, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``git -C cwd ARGS``, output captured: the one place git is started (but for the
    long-lived ``cat-file --batch`` of ``read_file``). (``subprocess`` is imported here:
    the hook's restore asks git nothing, and the import costs it 7 ms.)"""
    import subprocess

    try:
        return subprocess.run(
            ["git", "-C", str(cwd), *args],
            input=input,
            capture_output=True,
            env=git_env(env),
            check=False,
        )
    except FileNotFoundError as err:
        raise GitError("git is not installed or not on PATH") from err


def last_line(stderr: bytes) -> str:
    """Git's last message, on one line (a message git continues on indented lines, as
    ``unknown repository extension found:`` does, joined)."""
    lines = [ln for ln in stderr.decode(errors="replace").strip().splitlines() if ln.strip()]
    start = len(lines) - 1
    while start > 0 and lines[start][:1].isspace():
        start -= 1
    return " ".join(ln.strip() for ln in lines[start:]) if lines else ""


class RepoBase:
    """Where a repository is, how it stores objects and refs, and git run in it."""

    def __init__(
        self, top: Path, git_dir: Path, common_dir: Path, *, env: Mapping[str, str] | None = None
    ) -> None:
        self.top = top
        self.git_dir = git_dir
        self.common_dir = common_dir
        # GIT_DIR and GIT_WORK_TREE, absolute, when the caller named the repository by
        # them: every git this repository starts gets them (others are scrubbed).
        self._env = dict(env or {})
        self._batch: subprocess.Popen[bytes] | None = None
        self._format: RepoFormat | None = None

    @property
    def format(self) -> RepoFormat:
        """The repository's object format and ref storage, read once from its config (by
        git where the file includes others)."""
        if self._format is None:
            self._format = format_in_files(self.common_dir) or self._format_from_git()
        return self._format

    def _format_from_git(self) -> RepoFormat:
        objects = self._git("rev-parse", "--show-object-format").strip() or "sha1"
        refs = self._git("config", "--get", "extensions.refStorage", check=False).strip()
        return RepoFormat(objects.lower(), refs.lower() or "files")

    @property
    def _refs_in_files(self) -> bool:
        """Git's "files" ref backend: HEAD, loose refs and reflogs are plain files that
        can be read without git; any other (reftable) is asked through git."""
        return self.format.ref_storage == "files"

    def blob_id(self, data: bytes) -> str:
        """The id git gives ``data`` as a blob in this repository."""
        return blob_id(data, self.format.object_format)

    def _git(self, *args: str, check: bool = True, input: bytes | None = None) -> str:
        """Run git in this repository; its standard output. Callers outside this module
        ask a named method instead."""
        proc = self._proc(*args, input=input)
        if check and proc.returncode != 0:
            raise GitError(f"git {' '.join(args)} failed: {last_line(proc.stderr)}")
        return proc.stdout.decode(errors="surrogateescape")

    def _proc(
        self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return run_git(self.top, *args, input=input, env={**self._env, **(env or {})})
