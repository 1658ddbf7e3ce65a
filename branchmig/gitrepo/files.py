"""What git's own files say plainly, read without starting git: where the repository is
(the ``.git`` entries on the way up), its format, a ref file's line, a reflog entry's
checkout, a blob's id."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path


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


def checkout_move(subject: str) -> tuple[str, str] | None:
    """(from, to) of a reflog entry's subject when it is a checkout's ("checkout: moving
    from main to feature1"), each a branch name or a commit id."""
    prefix = "checkout: moving from "
    if not subject.startswith(prefix):
        return None
    left, sep, right = subject[len(prefix) :].partition(" to ")
    return (left, right) if sep else None


def absolute(start: Path, path: str) -> Path:
    """A path git printed, relative to ``start`` where it is relative (git prints the
    absolute ones with symbolic links resolved already)."""
    found = Path(path)
    return found if found.is_absolute() else (start / found).resolve()


# Set by the caller to name the repository: then git is asked where it is, with them.
LOCATION_ENV_VARS = ("GIT_DIR", "GIT_WORK_TREE")

# Where git would find another repository than the walk up from the folder (or refuse
# one), it is asked instead.
DISCOVERY_ENV_VARS = ("GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM")


def found_in_files(start: Path) -> tuple[Path, Path, Path] | None:
    """(top level, git dir, common git dir) of the repository holding ``start``, read
    from the ``.git`` folder (or a linked worktree's or submodule's ``.git`` file) on the
    way up, as git finds them; None wherever git might answer otherwise: a ``.git`` that
    is a symbolic link or unusual, a repository owned by someone else (git's
    safe.directory), ``core.worktree``, a bare repository, a filesystem boundary crossed,
    the discovery variables set."""
    if any(os.environ.get(name) for name in DISCOVERY_ENV_VARS):
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
            text = read_small(dot)
            if text is None or not text.startswith("gitdir: "):
                return None
            git_dir = absolute(folder, text[len("gitdir: ") :])
        else:
            return None
        common_rel = read_small(git_dir / "commondir")
        common = git_dir if common_rel is None else absolute(git_dir, common_rel)
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


def read_small(path: Path) -> str | None:
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


def is_object_id(text: str) -> bool:
    """A full SHA-1 or SHA-256 object id, as git writes one."""
    return len(text) in (40, 64) and _HEX.issuperset(text)


def plain_branch_name(name: str) -> bool:
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


def worktree_blob(path: Path, object_format: str) -> str | None:
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
