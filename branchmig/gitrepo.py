"""The one home of git: every question branchmig asks git, and the few commands it runs
(checkout; init and commit for ``branchmig demo``), as named methods of ``GitRepo``. Git
runs nowhere else, always started by ``_run`` with one scrubbed environment.

Reading is done with git plumbing (``cat-file --batch``, ``ls-tree``, ``rev-parse``), not
GitPython, because the hook and ``branchmig heads`` run on every checkout and must not pay
its import (~70 ms).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from branchmig.errors import GitError, NotARepositoryError, UnknownRefError

if TYPE_CHECKING:
    import subprocess


def is_null_id(text: str) -> bool:
    """Git's null object id (a hook's "no commit"): 40 zeros, or 64 in a SHA-256
    repository."""
    return len(text) in (40, 64) and not text.strip("0")


@dataclass(frozen=True)
class RepoFormat:
    """How the repository stores its objects and refs (``extensions.objectFormat``,
    ``extensions.refStorage`` in its config): sha1 and files unless it says otherwise."""

    object_format: str = "sha1"
    ref_storage: str = "files"


@dataclass(frozen=True)
class TreeEntry:
    path: str  # relative to the repository's top level, posix
    blob: str


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


def _git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REPO_ENV_VARS}
    env["LC_ALL"] = "C"
    env.update(extra or {})
    return env


def _run(
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
            env=_git_env(env),
            check=False,
        )
    except FileNotFoundError as err:
        raise GitError("git is not installed or not on PATH") from err


def _last_line(stderr: bytes) -> str:
    """Git's last message, on one line (a message git continues on indented lines, as
    ``unknown repository extension found:`` does, joined)."""
    lines = [ln for ln in stderr.decode(errors="replace").strip().splitlines() if ln.strip()]
    start = len(lines) - 1
    while start > 0 and lines[start][:1].isspace():
        start -= 1
    return " ".join(ln.strip() for ln in lines[start:]) if lines else ""


class GitRepo:
    """A git repository (working tree + git dirs)."""

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

    @classmethod
    def discover(cls, start: Path) -> GitRepo:
        """The repository holding ``start``: from the ``.git`` entries on the way up when
        they say it plainly (every command asks this first, and git costs 10 ms to
        start), from ``git rev-parse`` otherwise, which honours ``GIT_DIR`` and
        ``GIT_WORK_TREE`` as set by the caller (relative ones are relative to the current
        directory, as git has them)."""
        named = {
            name: os.path.abspath(value)
            for name in _LOCATION_ENV_VARS
            if (value := os.environ.get(name))
        }
        found = None if named else _found_in_files(start)
        if found is not None:
            repo = cls(*found)
        else:
            out = _run(
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
            repo = cls(Path(top), Path(git_dir), _absolute(start, common), env=named)
        if repo.format.ref_storage != "files":
            repo._git("rev-parse", "--git-dir")  # git's own refusal, when it cannot read it
        return repo

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

    @classmethod
    def init(cls, folder: Path, *, branch: str = "main") -> GitRepo:
        """A new repository in ``folder`` (created when missing), on ``branch``."""
        folder.mkdir(parents=True, exist_ok=True)
        out = _run(folder, "init", "--quiet", f"--initial-branch={branch}")
        if out.returncode != 0:
            raise GitError(f"git init {folder} failed: {_last_line(out.stderr)}")
        return cls.discover(folder)

    # plumbing ---------------------------------------------------------------------------

    def _git(self, *args: str, check: bool = True, input: bytes | None = None) -> str:
        """Run git in this repository; its standard output. Callers outside this module
        ask a named method instead."""
        proc = self._proc(*args, input=input)
        if check and proc.returncode != 0:
            raise GitError(f"git {' '.join(args)} failed: {_last_line(proc.stderr)}")
        return proc.stdout.decode(errors="surrogateescape")

    def _proc(
        self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return _run(self.top, *args, input=input, env={**self._env, **(env or {})})

    def resolve(self, ref: str) -> str:
        """The commit id ``ref`` names; ``UnknownRefError`` when it names none."""
        out = self._git(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", check=False
        ).strip()
        if not out:
            raise UnknownRefError(
                f"Unknown git ref '{ref}': no branch, tag or commit of that name "
                "(see 'git branch -a')"
            )
        return out

    def ls_tree(
        self, commit: str, paths: Sequence[str], *, recursive: bool = True
    ) -> list[TreeEntry]:
        """The blobs under ``paths`` at ``commit`` (paths relative to the top level)."""
        if not paths:
            return []
        out = self._proc("ls-tree", "-r", "-z", "--full-tree", commit, "--", *paths)
        if out.returncode != 0:
            raise GitError(
                f"Cannot list {', '.join(paths)} at {commit[:12]}: "
                f"{out.stderr.decode(errors='replace').strip()}"
            )
        entries = []
        wanted = [p.rstrip("/") + "/" for p in paths]
        for record in out.stdout.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            mode, kind, sha = meta.split()
            if kind != b"blob" or mode == b"120000":
                continue
            path = name.decode("utf-8", errors="surrogateescape")
            if not recursive and not any(
                "/" not in path[len(w) :] for w in wanted if path.startswith(w)
            ):
                continue
            entries.append(TreeEntry(path, sha.decode()))
        return entries

    def object_ids(self, specs: Sequence[str]) -> list[str | None]:
        """The object id of each ``commit:path`` spec (None where it names nothing), in
        one ``cat-file --batch-check`` run."""
        if not specs:
            return []
        proc = self._proc(
            "cat-file",
            "--batch-check=%(objectname)",
            input="".join(f"{s}\n" for s in specs).encode(),
        )
        lines = proc.stdout.decode(errors="surrogateescape").splitlines()
        if proc.returncode != 0 or len(lines) != len(specs):
            raise GitError(f"git cat-file --batch-check failed: {_last_line(proc.stderr)}")
        return [None if " " in line else line for line in lines]

    def read_blobs(
        self, blobs: Iterable[str], *, missing_ok: bool = False
    ) -> Iterator[tuple[str, bytes]]:
        """The content of each blob, read in one ``cat-file --batch`` run (one pipe read
        for all of them is what keeps a cold 5,000-script history fast)."""
        pending = list(dict.fromkeys(blobs))
        if not pending:
            return
        proc = self._proc("cat-file", "--batch", input="".join(f"{b}\n" for b in pending).encode())
        out, pos = proc.stdout, 0
        for blob in pending:
            end = out.index(b"\n", pos)
            parts = out[pos:end].split()
            if len(parts) != 3:
                if missing_ok:
                    pos = end + 1
                    continue
                raise GitError(f"git cat-file: object {blob} is missing")
            size = int(parts[2])
            yield blob, out[end + 1 : end + 1 + size]
            pos = end + 1 + size + 1

    def read_file(self, commit: str, path: str) -> bytes | None:
        found = self._object(f"{commit}:{path}")
        return None if found is None else found[2]

    def folder_at(self, commit: str, path: str) -> dict[str, tuple[bool, str]] | None:
        """The entries of folder ``path`` (relative to the top level; "" for the top) at
        ``commit``: name -> (whether it is a folder, its object id), symbolic links and
        submodules left out; None where ``commit`` has no such folder."""
        found = self._object(f"{commit}:{path}" if path else f"{commit}^{{tree}}")
        if found is None or found[1] != "tree":
            return None
        return _tree_entries(found[2], len(found[0]) // 2)

    def blob(self, object_id: str) -> bytes | None:
        """The content of blob ``object_id``; None when git has no such blob."""
        found = self._object(object_id)
        return found[2] if found is not None and found[1] == "blob" else None

    def _object(self, spec: str) -> tuple[str, str, bytes] | None:
        """(object id, type, content) of what ``spec`` names, read through the one
        long-lived ``cat-file --batch``; None when it names nothing."""
        batch = self._cat_file()
        assert batch.stdin is not None and batch.stdout is not None
        batch.stdin.write(f"{spec}\n".encode())
        batch.stdin.flush()
        header = batch.stdout.readline()
        if header.endswith((b" missing\n", b" ambiguous\n")):
            return None
        parts = header.split()
        size = int(parts[2])
        data = batch.stdout.read(size)
        batch.stdout.read(1)
        return parts[0].decode(), parts[1].decode(), data

    def _cat_file(self) -> subprocess.Popen[bytes]:
        if self._batch is None or self._batch.poll() is not None:
            import subprocess

            self._batch = subprocess.Popen(
                ["git", "-C", str(self.top), "cat-file", "--batch"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=_git_env(self._env),
            )
        return self._batch

    def close(self) -> None:
        if self._batch is not None:
            if self._batch.stdin:
                self._batch.stdin.close()
            self._batch.wait()
            if self._batch.stdout:
                self._batch.stdout.close()
            self._batch = None

    def __enter__(self) -> GitRepo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # refs, the working tree, history ------------------------------------------------------

    # The hook asks these on every run that migrates or restores: each is answered from
    # the files of git's "files" ref backend when they say it plainly (HEAD, a loose
    # branch ref, the HEAD reflog), and by git otherwise (packed refs, reftable,
    # anything unusual), which a process costs 2-3 ms more.

    def _read_ref_file(self, path: Path) -> str | None:
        return _read_small(path) if self._refs_in_files else None

    def head_commit(self) -> str | None:
        head = self._read_ref_file(self.git_dir / "HEAD")
        if head is not None and _is_object_id(head):
            return head
        if head is not None and head.startswith("ref: refs/heads/"):
            found = self._loose_branch(head[len("ref: refs/heads/") :])
            if found is not None:
                return found
        out = self._git("rev-parse", "--verify", "--quiet", "HEAD", check=False).strip()
        return out or None

    def current_branch(self) -> str | None:
        head = self._read_ref_file(self.git_dir / "HEAD")
        if head is not None and _is_object_id(head):
            return None  # detached
        if head is not None and head.startswith("ref: refs/heads/"):
            name = head[len("ref: refs/heads/") :]
            if _plain_branch_name(name):
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
        if not _plain_branch_name(name):
            return None
        found = self._read_ref_file(self.common_dir / "refs" / "heads" / name)
        return found if found is not None and _is_object_id(found) else None

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
            found = _worktree_blob(self.top / path, self.format.object_format)
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

    def changed_between(self, a: str, b: str) -> set[str]:
        """The paths whose content differs between commits ``a`` and ``b``."""
        return {p for p in self._git("diff", "--name-only", "-z", a, b).split("\0") if p}

    def branch_tips(self) -> dict[str, str]:
        """Every local branch's exact name and tip commit."""
        out = self._git("for-each-ref", "--format=%(objectname) %(refname)", "refs/heads")
        tips = {}
        for line in out.splitlines():
            commit, _, ref = line.partition(" ")
            tips[ref.removeprefix("refs/heads/")] = commit
        return tips

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
        return _checkout_move(subject) if tab else None

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
            move = _checkout_move(subject)
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
            move = _checkout_move(subject) if tab else None
            if move is not None:
                moves.append(move)
        return moves

    def is_ancestor(self, ancestor: str, commit: str) -> bool:
        return self._proc("merge-base", "--is-ancestor", ancestor, commit).returncode == 0

    def branches_containing(self, commit: str) -> list[str]:
        out = self._git(
            "for-each-ref", f"--contains={commit}", "--format=%(refname)", "refs/heads", check=False
        )
        return [line.removeprefix("refs/heads/") for line in out.splitlines() if line]

    def branches_containing_each(
        self, commits: Iterable[str], tips: Mapping[str, str] | None = None
    ) -> dict[str, list[str]]:
        """For each of ``commits``, the branches whose history holds it, in two git runs
        whatever their number: the history between the commits' common ancestor and the
        branch tips, walked here (one ``for-each-ref --contains`` per commit costs a
        process each). ``tips``: ``branch_tips()`` when the caller has it."""
        wanted = list(dict.fromkeys(commits))
        if len(wanted) < 2:
            return {c: self.branches_containing(c) for c in wanted}
        tips = self.branch_tips() if tips is None else tips
        base = self._git("merge-base", "--octopus", *wanted, check=False).split()
        if not base:  # unrelated histories, or a commit gc took: ask one by one
            return {c: self.branches_containing(c) for c in wanted}
        # Everything a tip reaches that the common ancestor's parents do not: every path
        # from a tip down to a wanted commit runs through descendants of that ancestor.
        out = self._git(
            "rev-list", "--parents", *sorted(set(tips.values())), "--not", f"{base[0]}^@"
        )
        children: dict[str, list[str]] = {}
        for line in out.splitlines():
            commit, *parents = line.split()
            children.setdefault(commit, [])
            for parent in parents:
                children.setdefault(parent, []).append(commit)
        by_tip: dict[str, list[str]] = {}
        for name, tip in sorted(tips.items()):
            by_tip.setdefault(tip, []).append(name)
        found: dict[str, list[str]] = {}
        for commit in wanted:
            seen, todo = set(), [commit] if commit in children else []
            while todo:
                current = todo.pop()
                if current not in seen:
                    seen.add(current)
                    todo.extend(children[current])
            found[commit] = sorted(n for tip in seen & by_tip.keys() for n in by_tip[tip])
        return found

    def refs_containing(self, commit: str, namespace: str) -> list[str]:
        """The short names (``feature1``, ``origin/main``) of the refs under ``namespace``
        (``refs/heads``, ``refs/remotes``) whose history holds ``commit``."""
        return self._git(
            "for-each-ref",
            "--format=%(refname:short)",
            "--contains",
            commit,
            namespace,
            check=False,
        ).split()

    def count_commits(self, since: str, until: str) -> int:
        """How many commits ``until`` has that ``since`` has not (0 when either is unknown)."""
        out = self._git("rev-list", "--count", f"{since}..{until}", check=False).strip()
        return int(out or 0)

    def commit_adding(self, path: str, start: str = "HEAD") -> str | None:
        """The newest commit in ``start``'s history that added ``path``."""
        out = self._git(
            "log", "-1", "--format=%H", "--diff-filter=A", start, "--", path, check=False
        ).strip()
        return out or None

    def head_reflog(self, limit: int) -> list[tuple[str, str]]:
        """(commit, subject) of HEAD's ``limit`` latest reflog entries, newest first: the
        subject as git wrote it (``rebase (finish): returning to refs/heads/x``)."""
        out = self._git("reflog", "show", "-n", str(limit), "--format=%H %gs", "HEAD", check=False)
        entries = []
        for line in out.splitlines():
            commit, _, subject = line.partition(" ")
            entries.append((commit, subject))
        return entries

    def latest_merge(self, commit: str = "HEAD") -> str | None:
        """The newest merge commit on ``commit``'s first-parent line (itself included)."""
        out = self._git(
            "rev-list", "--first-parent", "--merges", "-n", "1", commit, check=False
        ).strip()
        return out or None

    def parents(self, commit: str) -> list[str]:
        """The parents of ``commit``, first parent first."""
        return self._git("rev-list", "--parents", "-n", "1", commit).split()[1:]

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

    def second_parent(self, commit: str = "HEAD") -> str | None:
        """The merged commit of a merge commit; None for any other commit."""
        out = self._git("rev-parse", "--verify", "--quiet", f"{commit}^2", check=False).strip()
        return out or None


def _tree_entries(data: bytes, id_size: int) -> dict[str, tuple[bool, str]]:
    """A tree object's entries (``<mode> <name>\\0<raw id>`` each): name -> (folder?,
    object id), files and folders only."""
    entries: dict[str, tuple[bool, str]] = {}
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        nul = data.index(b"\0", space)
        mode = data[pos:space]
        name = data[space + 1 : nul].decode("utf-8", errors="surrogateescape")
        oid = data[nul + 1 : nul + 1 + id_size].hex()
        pos = nul + 1 + id_size
        if mode == b"40000":
            entries[name] = (True, oid)
        elif mode in (b"100644", b"100755"):
            entries[name] = (False, oid)
    return entries


def _checkout_move(subject: str) -> tuple[str, str] | None:
    """(from, to) of a reflog entry's subject when it is a checkout's ("checkout: moving
    from main to feature1"), each a branch name or a commit id."""
    prefix = "checkout: moving from "
    if not subject.startswith(prefix):
        return None
    left, sep, right = subject[len(prefix) :].partition(" to ")
    return (left, right) if sep else None


def _not_a_repository(start: Path, named: Mapping[str, str], stderr: bytes) -> str:
    if named:
        given = ", ".join(f"{name}='{value}'" for name, value in named.items())
        return (
            f"{given} name no git repository git can open ({_last_line(stderr)}); fix or unset them"
        )
    return f"'{start}' is not inside a git repository (git init, or cd into one)"


def _absolute(start: Path, path: str) -> Path:
    """A path git printed, relative to ``start`` where it is relative (git prints the
    absolute ones with symbolic links resolved already)."""
    found = Path(path)
    return found if found.is_absolute() else (start / found).resolve()


# Set by the caller to name the repository: then git is asked where it is, with them.
_LOCATION_ENV_VARS = ("GIT_DIR", "GIT_WORK_TREE")

# Where git would find another repository than the walk up from the folder (or refuse
# one), it is asked instead.
_DISCOVERY_ENV_VARS = ("GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM")


def _found_in_files(start: Path) -> tuple[Path, Path, Path] | None:
    """(top level, git dir, common git dir) of the repository holding ``start``, read
    from the ``.git`` folder (or a linked worktree's or submodule's ``.git`` file) on the
    way up, as git finds them; None wherever git might answer otherwise: a ``.git`` that
    is a symbolic link or unusual, a repository owned by someone else (git's
    safe.directory), ``core.worktree``, a bare repository, a filesystem boundary crossed,
    the discovery variables set."""
    if any(os.environ.get(name) for name in _DISCOVERY_ENV_VARS):
        return None
    try:
        here = start.resolve(strict=True)  # git's top level is a real path too
        device = here.stat().st_dev
    except OSError:
        return None
    for folder in (here, *here.parents):
        dot = folder / ".git"
        try:
            st = dot.lstat()
            if folder.stat().st_dev != device:
                return None
        except FileNotFoundError:
            continue
        except OSError:
            return None
        if stat.S_ISDIR(st.st_mode):
            git_dir = dot
        elif stat.S_ISREG(st.st_mode):
            text = _read_small(dot)
            if text is None or not text.startswith("gitdir: "):
                return None
            git_dir = _absolute(folder, text[len("gitdir: ") :])
        else:
            return None
        common_rel = _read_small(git_dir / "commondir")
        common = git_dir if common_rel is None else _absolute(git_dir, common_rel)
        if not _plain_git_dir(folder, git_dir, common):
            return None
        return folder, git_dir, common
    return None


def _plain_git_dir(top: Path, git_dir: Path, common: Path) -> bool:
    """A git dir as ``git init``/``worktree add`` make it, it and its working tree owned
    by this user, whose configuration moves no working tree and includes no other file."""
    try:
        uid = os.getuid()
        if top.stat().st_uid != uid or (git_dir / "HEAD").stat().st_uid != uid:
            return False
        config = (common / "config").read_text(encoding="utf-8", errors="replace")
    except (OSError, AttributeError):  # AttributeError: no getuid (Windows)
        return False
    for line in config.lower().splitlines():
        line = line.strip()
        key = line.split("=", 1)[0].strip()
        if line.startswith("[include") or (
            key in ("worktree", "bare") and line != f"{key} = false"
        ):
            return False
    return not (git_dir / "config.worktree").exists()


def _read_small(path: Path) -> str | None:
    """A ref file's one line; None when it cannot be read, or is not one short line."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(4097)
        if len(data) > 4096 or data.count(b"\n") > 1:
            return None
        return data.decode("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


_HEX = frozenset("0123456789abcdef")


def _is_object_id(text: str) -> bool:
    """A full SHA-1 or SHA-256 object id, as git writes one."""
    return len(text) in (40, 64) and _HEX.issuperset(text)


def _plain_branch_name(name: str) -> bool:
    """A branch name safe to look for as a file under refs/heads (git's own rules keep
    most of these out of names anyway; reftable's HEAD names ``.invalid``)."""
    return bool(name) and not (
        name.startswith(("/", ".", "-"))
        or name.endswith(("/", ".lock"))
        or ".." in name
        or "\\" in name
        or "//" in name
        or "/." in name
    )


def _worktree_blob(path: Path, object_format: str) -> str | None:
    """The blob id of the file (or symbolic link) at ``path``; None when there is none."""
    try:
        if path.is_symlink():
            return blob_id(os.fsencode(os.readlink(path)), object_format)
        return blob_id(path.read_bytes(), object_format) if path.is_file() else None
    except OSError:
        return None


def blob_id(data: bytes, object_format: str) -> str:
    """The id git gives ``data`` as a blob in a repository of ``object_format`` (sha1,
    sha256), so working-tree files and git objects share one cache."""
    return hashlib.new(object_format, b"blob %d\0" % len(data) + data).hexdigest()


def format_in_files(common_dir: Path) -> RepoFormat | None:
    """The ``[extensions]`` of the repository's config as git reads them; None where the
    file cannot say alone (it includes others) or cannot be read."""
    try:
        text = (common_dir / "config").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    section, found = "", {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            header, _, line = line[1:].partition("]")
            section = header.strip().lower()
            if section.startswith("include"):
                return None
        key, sep, value = line.partition("=")
        if section == "extensions" and sep:
            value = value.split("#")[0].split(";")[0].strip().strip('"')
            found[key.strip().lower()] = value.lower()
    return RepoFormat(found.get("objectformat") or "sha1", found.get("refstorage") or "files")
