"""Read migration scripts at any git ref, or in the working tree, without importing them.

Each script's header is read from its text (``headers``), once per blob id: that is what
makes a 5,000-revision history cheap to read, and what lets old scripts whose bodies only
parse as Python 2 be analysed.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from branchmig.cache import (
    CACHE_VERSION,
    HeaderCache,
    ScriptSetCache,
    changed_since,
    header_cache,
    racy_cutoff,
    script_set_cache,
    stat_key,
)
from branchmig.errors import GitError, ScriptError
from branchmig.gitrepo import GitRepo, TreeEntry, blob_id
from branchmig.graph import Revision
from branchmig.headers import parse_header

_NOT_SCRIPT = re.compile(r"(^|/)(__init__|\.#)[^/]*$")  # what Alembic skips too


@dataclass(frozen=True)
class ScriptSet:
    """The migration scripts found at one ref (or in the working tree)."""

    ref: str  # as the user named it; "" for the working tree
    commit: str | None
    revisions: tuple[Revision, ...]
    warnings: tuple[str, ...] = ()


def cache_for(repo: GitRepo) -> HeaderCache:
    return header_cache(repo.common_dir)


def script_set_cache_for(repo: GitRepo) -> ScriptSetCache:
    return script_set_cache(repo.common_dir)


# -- reading a ref or the working tree ----------------------------------------------------


def is_candidate(path: str) -> bool:
    return path.endswith(".py") and not _NOT_SCRIPT.search(path)


def _revisions(
    entries: Iterable[tuple[str, str, bytes | None]], cache: HeaderCache
) -> tuple[list[Revision], list[str]]:
    revisions, warnings = [], []
    for path, blob, data in entries:
        header = cache.header(blob, data, path)
        warnings.extend(header["warnings"])
        revisions.append(
            Revision(
                id=header["revision"],
                down=tuple(header["down"]),
                labels=tuple(header["labels"]),
                depends_on=tuple(header["depends"]),
                path=path,
                blob=blob,
            )
        )
    return revisions, warnings


def read_ref(
    repo: GitRepo,
    commit: str,
    version_locations: Sequence[str],
    *,
    recursive: bool,
    cache: HeaderCache,
    ref: str = "",
) -> ScriptSet:
    """The scripts in ``version_locations`` at ``commit``, from git objects."""
    entries = [
        e
        for e in repo.ls_tree(commit, version_locations, recursive=recursive)
        if is_candidate(e.path)
    ]
    missing = [e for e in entries if e.blob not in cache.headers]
    contents = _from_worktree(repo, missing)
    from_git = [e.blob for e in missing if e.blob not in contents]
    if from_git:
        contents.update(repo.read_blobs(from_git))
    revisions, warnings = _revisions(
        ((e.path, e.blob, contents.get(e.blob)) for e in entries), cache
    )
    cache.save()
    return ScriptSet(
        ref=ref or commit, commit=commit, revisions=tuple(revisions), warnings=tuple(warnings)
    )


def _from_worktree(repo: GitRepo, entries: Sequence[TreeEntry]) -> dict[str, bytes]:
    """The blobs that the working tree holds at the same path, unchanged: a file read
    and hashed costs far less than git inflating a loose object."""
    found: dict[str, bytes] = {}
    for entry in entries:
        try:
            with open(os.path.join(repo.top, entry.path), "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        if repo.blob_id(data) == entry.blob:
            found[entry.blob] = data
    return found


def read_worktree(
    top: Path,
    version_locations: Sequence[str],
    *,
    recursive: bool,
    cache: HeaderCache,
    object_format: str,
) -> ScriptSet:
    """The scripts in the working tree, committed or not, with the blob ids git gives
    them in a repository of ``object_format``."""
    width = 2 * hashlib.new(object_format).digest_size
    files: list[tuple[str, str, bytes | None]] = []
    prefix = len(str(top)) + 1
    cutoff = racy_cutoff()
    for location in version_locations:
        for entry in _walk(os.path.join(top, location), recursive):
            rel = entry.path[prefix:].replace(os.sep, "/")
            if not is_candidate(rel):
                continue
            st = entry.stat()
            key = list(stat_key(st))
            known = cache.stats.get(rel)
            if (
                known is not None
                and known[:-1] == key
                and len(known[-1]) == width  # not an id of another object format
                and known[-1] in cache.headers
            ):
                files.append((rel, known[-1], None))
                continue
            with open(entry.path, "rb") as fh:
                data = fh.read()
            blob = blob_id(data, object_format)
            # Like git's "racily clean" index entries: a file modified in the last
            # seconds may change again without its stat changing (coarse timestamps),
            # so only older files are trusted by their stat.
            if not changed_since(st, cutoff):
                cache.stats[rel] = [*key, blob]
                cache.dirty = True
            elif cache.stats.pop(rel, None) is not None:
                cache.dirty = True
            files.append((rel, blob, data))
    revisions, warnings = _revisions(files, cache)
    cache.save()
    return ScriptSet(ref="", commit=None, revisions=tuple(revisions), warnings=tuple(warnings))


def worktree_signature(
    top: Path, version_locations: Sequence[str], *, recursive: bool, object_format: str
) -> tuple[str, bool]:
    """A digest of every candidate script's path and stat (``stat_key``): equal digests
    mean the same scripts. A file too recent for its stat to be trusted (one that a
    checkout has just written) counts by its content instead, so the scripts a return to
    a branch brings back are known again at once; the flag says there was one, whose
    content may still be changing."""
    import marshal

    rows: list[tuple[str, str] | tuple[str, tuple[int, ...], int, int]] = []
    racy = False
    newest = racy_cutoff()
    for location in version_locations:
        for entry in _walk(os.path.join(top, location), recursive):
            name = entry.name
            if not name.endswith(".py") or name.startswith(("__init__", ".#")):
                continue
            st = entry.stat()
            if st.st_ctime_ns > newest or st.st_mtime_ns > newest:  # changed_since, inline
                try:
                    with open(entry.path, "rb") as fh:
                        rows.append((entry.path, blob_id(fh.read(), object_format)))
                    racy = True
                    continue
                except OSError:
                    pass  # gone since the listing: its stat stands for it
            # stat_key, inline and unflattened: this loop is the warm `heads`' hot path.
            rows.append((entry.path, st[:7], st.st_mtime_ns, st.st_ctime_ns))
    signed = marshal.dumps(
        (CACHE_VERSION, object_format, recursive, tuple(version_locations), rows)
    )
    return hashlib.sha1(signed).hexdigest(), racy


def _walk(root: str, recursive: bool) -> list[os.DirEntry[str]]:
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = [e for e in entries if e.is_file()]
    if recursive:
        for sub in entries:
            if sub.is_dir() and sub.name != "__pycache__":
                found.extend(_walk(sub.path, recursive))
    return sorted(found, key=lambda e: e.path)


def script_text(repo: GitRepo, revision: Revision) -> bytes:
    """The text of one script as the revision saw it, from git (or the working tree when
    the blob is not in git yet)."""
    for _, data in repo.read_blobs([revision.blob]):
        return data
    raise ScriptError(f"{revision.path}: script text {revision.blob[:12]} not found")


def read_text_anywhere(repo: GitRepo, revision: Revision) -> bytes | None:
    """The script's text from git, else from the working tree if it is the same blob."""
    try:
        return script_text(repo, revision)
    except GitError:
        path = repo.top / revision.path
        if path.is_file():
            data = path.read_bytes()
            if repo.blob_id(data) == revision.blob:
                return data
        return None


__all__ = [
    "HeaderCache",
    "ScriptSet",
    "ScriptSetCache",
    "TreeEntry",
    "cache_for",
    "parse_header",
    "read_ref",
    "read_worktree",
    "script_set_cache_for",
]
