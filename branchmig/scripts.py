"""Read migration scripts at any git ref, or in the working tree, without importing them.

Each script's header is read from its text (``headers``), once per blob id: that is what
makes a 5,000-revision history cheap to read, and what lets old scripts whose bodies only
parse as Python 2 be analysed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from branchmig.errors import GitError, ScriptError
from branchmig.gitrepo import GitRepo, TreeEntry, blob_id
from branchmig.graph import Revision
from branchmig.headers import parse_header

_NOT_SCRIPT = re.compile(r"(^|/)(__init__|\.#)[^/]*$")  # what Alembic skips too
CACHE_VERSION = 2  # 2: headers in every form Alembic reads; stats as git's index keeps them
_RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class ScriptSet:
    """The migration scripts found at one ref (or in the working tree)."""

    ref: str  # as the user named it; "" for the working tree
    commit: str | None
    revisions: tuple[Revision, ...]
    warnings: tuple[str, ...] = ()


# -- the cache of parsed headers, by blob id ---------------------------------------------


class HeaderCache:
    """Parsed headers by blob id (and working-tree files by path and ``stat_key``), kept
    as JSON under the git common dir so a second look at a ref costs a file read."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.headers: dict[str, Any] = {}
        self.stats: dict[str, list[Any]] = {}
        self.dirty = False
        if path is not None:
            try:
                data = json.loads(path.read_bytes())
                if data.get("version") == CACHE_VERSION:
                    self.headers = data["headers"]
                    self.stats = data["stats"]
            except (OSError, ValueError, KeyError, AttributeError):
                pass

    def header(self, blob: str, data: bytes | None, path: str) -> dict[str, Any]:
        if blob in self.headers:
            cached: dict[str, Any] = self.headers[blob]
            return cached
        if data is None:
            raise KeyError(blob)
        parsed = parse_header(data, path)
        if not parsed.get("named"):
            self.headers[blob] = parsed
            self.dirty = True
        return parsed

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        from branchmig.errors import StateError
        from branchmig.state import write_private

        with contextlib.suppress(StateError):  # a cache not written only costs time
            write_private(
                self.path,
                json.dumps(
                    {"version": CACHE_VERSION, "headers": self.headers, "stats": self.stats}
                ).encode(),
            )
        self.dirty = False


def cache_for(repo: GitRepo) -> HeaderCache:
    from branchmig.layout import header_cache_path

    return HeaderCache(header_cache_path(repo.common_dir))


class ScriptSetCache:
    """Whole sets of scripts by the signature of what they were read from (the folders'
    tree ids at a commit, the files' stats in the working tree), one marshal file each.
    Reading one back costs a few ms on a 1,500-revision history, where listing the tree
    and rebuilding every header from the header cache costs tens: the hook and a switch
    pay that on every checkout."""

    KEEP = 32  # the most recently used sets; older files are removed

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, signature: str) -> Path:
        import hashlib

        return self.folder / f"{hashlib.sha1(signature.encode()).hexdigest()}.marshal"

    def get(self, signature: str | None) -> tuple[tuple[Revision, ...], tuple[str, ...]] | None:
        if signature is None:
            return None
        import marshal

        path = self._path(signature)
        try:
            version, stored, rows, warnings = marshal.loads(path.read_bytes())
            if version != CACHE_VERSION or stored != signature:
                return None
            revisions = tuple(
                Revision(id=rev, down=down, labels=labels, depends_on=depends, path=rel, blob=blob)
                for rev, down, labels, depends, rel, blob in rows
            )
            os.utime(path)  # recently used: kept by the pruning in put()
        except (OSError, ValueError, EOFError, TypeError):
            return None
        return revisions, tuple(warnings)

    def put(
        self, signature: str | None, revisions: Sequence[Revision], warnings: Sequence[str]
    ) -> None:
        if signature is None:
            return
        import marshal

        rows = [(r.id, r.down, r.labels, r.depends_on, r.path, r.blob) for r in revisions]
        path = self._path(signature)
        from branchmig.errors import StateError
        from branchmig.state import write_private

        try:
            write_private(path, marshal.dumps((CACHE_VERSION, signature, rows, list(warnings))))
            kept = sorted(self.folder.glob("*.marshal"), key=lambda f: f.stat().st_mtime_ns)
            for old in kept[: -self.KEEP]:
                old.unlink()
        except (OSError, StateError):
            pass  # a cache that cannot be written only costs time


def script_set_cache_for(repo: GitRepo) -> ScriptSetCache:
    from branchmig.layout import script_sets_path

    return ScriptSetCache(script_sets_path(repo.common_dir))


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
    now_ns = time.time_ns()
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
            if not _recent(st, now_ns - _RACY_NS):
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
    newest = time.time_ns() - _RACY_NS
    for location in version_locations:
        for entry in _walk(os.path.join(top, location), recursive):
            name = entry.name
            if not name.endswith(".py") or name.startswith(("__init__", ".#")):
                continue
            st = entry.stat()
            if st.st_ctime_ns > newest or st.st_mtime_ns > newest:  # _recent, inline
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


def stat_key(st: os.stat_result) -> tuple[int, ...]:
    """What git's index compares to trust a file unchanged without reading it
    (``match_stat_data``): mode, inode, device, owner and size (with the link count: the
    first fields of the stat, taken in one slice), mtime and ctime to the nanosecond. The
    ctime is what catches a file rewritten in place with its mtime put back (``os.utime``,
    ``touch -r``, ``cp -p``): no program can set it."""
    return (*st[:7], st.st_mtime_ns, st.st_ctime_ns)


def _recent(st: os.stat_result, since_ns: int) -> bool:
    """Whether the file changed after ``since_ns``, as far as its stat tells: git's racy
    rule looks at the mtime; the ctime too here, so a file rewritten with its mtime put
    back is not trusted by a stat taken in the same clock tick as the rewrite."""
    return st.st_ctime_ns > since_ns or st.st_mtime_ns > since_ns


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


# -- what a downgrade() destroys -----------------------------------------------------------

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
