"""Read migration scripts at any git ref, or in the working tree, without importing them.

Only the four header assignments are parsed, with ``ast``: a statement is cut out of the
text at each top-level ``revision`` / ``down_revision`` / ``branch_labels`` /
``depends_on`` and parsed alone. That is what makes a 5,000-revision history cheap to
read, and what lets old scripts whose bodies only parse as Python 2 be analysed.
"""

from __future__ import annotations

import ast
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

from branchmig.downgrades import decode
from branchmig.errors import GitError, ScriptError
from branchmig.gitrepo import GitRepo, TreeEntry, blob_id
from branchmig.graph import Revision

_HEADER_START = re.compile(
    r"^(revision|down_revision|branch_labels|depends_on)[ \t]*(?::[^=\n]*)?=(?!=)", re.M
)
_NOT_SCRIPT = re.compile(r"(^|/)(__init__\.py|\.#[^/]*)$")
CACHE_VERSION = 1
_RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class ScriptSet:
    """The migration scripts found at one ref (or in the working tree)."""

    ref: str  # as the user named it; "" for the working tree
    commit: str | None
    revisions: tuple[Revision, ...]
    warnings: tuple[str, ...] = ()


# -- header parsing ----------------------------------------------------------------------


def _statement_end(text: str, start: int) -> int:
    """Index just past the logical line that starts at ``start``."""
    depth = 0
    i, n = start, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            triple = text[i : i + 3] in ('"""', "'''")
            quote = text[i : i + 3] if triple else c
            i += len(quote)
            while i < n and not text.startswith(quote, i):
                if text[i] == "\\":
                    i += 1
                elif text[i] == "\n" and not triple:
                    break
                i += 1
            i += len(quote)
            continue
        if c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "\\" and text[i + 1 : i + 2] == "\n":
            i += 2
            continue
        elif c == "\n" and depth <= 0:
            return i
        i += 1
    return n


def _decode(data: bytes) -> str:
    return decode(data)


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _header_value(stmt: ast.stmt) -> ast.expr | None:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        return stmt.value
    if isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        return stmt.value
    return None


class _Value:
    """A header value already known, read without ``ast``."""

    __slots__ = ("value",)

    def __init__(self, value: str | tuple[str, ...] | list[str] | None) -> None:
        self.value = value


_Found = dict[str, tuple["ast.expr | _Value", int]]


def _parse_simple(text: str, matches: list[re.Match[str]]) -> _Found | None:
    """The common case, one ``compile`` for all headers: each on a line of its own."""
    lines = []
    for match in matches:
        end = text.find("\n", match.start())
        lines.append(text[match.start() : end if end >= 0 else len(text)])
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return None
    if len(tree.body) != len(matches):
        return None
    found: _Found = {}
    for match, stmt in zip(matches, tree.body, strict=True):
        value = _header_value(stmt)
        if value is not None:
            found[match.group(1)] = (value, _line_of(text, match.start()))
    return found


_STR = r"""(?:'[^'\\\n]*'|"[^"\\\n]*")"""
_SIMPLE_VALUE = re.compile(
    rf"[ \t]*(None|{_STR}|\([ \t]*(?:{_STR}[ \t]*,[ \t]*)*(?:{_STR}[ \t]*,?[ \t]*)?\)"
    rf"|\[[ \t]*(?:{_STR}[ \t]*,[ \t]*)*(?:{_STR}[ \t]*)?\])[ \t]*(?:#[^\n]*)?\r?$",
    re.M,
)
_STR_ITEM = re.compile(_STR)


def _parse_fast(text: str, matches: list[re.Match[str]]) -> _Found | None:
    """Headers whose values are plain string literals, None, or tuples/lists of them (what
    ``alembic revision`` writes), read without compiling anything."""
    found: _Found = {}
    for match in matches:
        value = _SIMPLE_VALUE.match(text, match.end())
        if value is None:
            return None
        raw = value.group(1)
        if raw == "None":
            node = _Value(None)
        elif raw[0] in "'\"":
            node = _Value(raw[1:-1])
        else:
            items = [i[1:-1] for i in _STR_ITEM.findall(raw)]
            node = _Value(tuple(items) if raw[0] == "(" else items)
        found[match.group(1)] = (node, _line_of(text, match.start()))
    return found


def _parse_careful(text: str, matches: list[re.Match[str]], path: str) -> _Found:
    """Headers spread over several lines, or broken ones (to name the line)."""
    found: _Found = {}
    for match in matches:
        start = match.start()
        line = _line_of(text, start)
        snippet = text[start : _statement_end(text, start)]
        try:
            tree = ast.parse(snippet)
        except SyntaxError as err:
            raise ScriptError(
                f"{path}:{line + (err.lineno or 1) - 1}: cannot parse the "
                f"'{match.group(1)}' header: {err.msg}"
            ) from None
        value = _header_value(tree.body[0]) if tree.body else None
        if value is not None:
            found[match.group(1)] = (value, line)
    return found


def parse_header(data: bytes, path: str) -> dict[str, Any] | None:
    """The header values of one script, or None when it is not a migration.

    Returns ``{"revision": str, "down": [...], "labels": [...], "depends": [...],
    "warnings": [...]}``. ``revision`` and ``down_revision`` must be literals.
    """
    text = _decode(data)
    matches = list(_HEADER_START.finditer(text))
    found = (_parse_fast(text, matches) or _parse_simple(text, matches)) if matches else {}
    if found is None:
        found = _parse_careful(text, matches, path)
    if "revision" not in found:
        return None
    warnings: list[str] = []

    def literal(name: str, *, required: bool) -> Any:
        if name not in found:
            return None
        node, line = found[name]
        if isinstance(node, _Value):
            return node.value
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            message = f"{path}:{line}: {name} is not a literal ({ast.unparse(node)[:60]})"
            if required:
                raise ScriptError(
                    message + "; branchmig reads headers without importing "
                    "the script, so write the value itself"
                ) from None
            warnings.append(message + "; treated as unknown")
            return None

    revision = literal("revision", required=True)
    if not isinstance(revision, str) or not revision:
        raise ScriptError(f"{path}:{found['revision'][1]}: revision must be a non-empty string")
    down = _as_ids(literal("down_revision", required=True), path, "down_revision", found)
    labels = _as_ids(literal("branch_labels", required=False), path, "branch_labels", found)
    depends = _as_ids(literal("depends_on", required=False), path, "depends_on", found)
    return {
        "revision": revision,
        "down": down,
        "labels": labels,
        "depends": depends,
        "warnings": warnings,
    }


def _as_ids(value: Any, path: str, name: str, found: _Found) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (tuple, list, set, frozenset)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ScriptError(
        f"{path}:{found[name][1]}: {name} must be None, a string or a tuple of strings"
    )


# -- the cache of parsed headers, by blob id ---------------------------------------------


class HeaderCache:
    """Parsed headers by blob id (and working-tree files by path, size and mtime), kept
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

    def header(self, blob: str, data: bytes | None, path: str) -> dict[str, Any] | None:
        if blob in self.headers:
            cached: dict[str, Any] | None = self.headers[blob]
            return cached
        if data is None:
            raise KeyError(blob)
        parsed = parse_header(data, path)
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
        if header is None:
            continue
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
            key = [st.st_size, st.st_mtime_ns, st.st_ino]
            known = cache.stats.get(rel)
            if (
                known is not None
                and known[:3] == key
                and len(known[3]) == width  # not an id of another object format
                and known[3] in cache.headers
            ):
                files.append((rel, known[3], None))
                continue
            with open(entry.path, "rb") as fh:
                data = fh.read()
            blob = blob_id(data, object_format)
            # Like git's "racily clean" index entries: a file modified in the last
            # seconds may change again without its size or mtime changing (coarse
            # timestamps), so only older files are trusted by their stat.
            if now_ns - st.st_mtime_ns > _RACY_NS:
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
    """A digest of every candidate script's path and stat (size, mtime, inode): equal
    digests mean the same scripts. A file too recent for its stat to be trusted (one
    that a checkout has just written) counts by its content instead, so the scripts a
    return to a branch brings back are known again at once; the flag says there was
    one, whose content may still be changing."""
    import marshal

    rows: list[tuple[str, str] | tuple[str, int, int, int]] = []
    racy = False
    newest = time.time_ns() - _RACY_NS
    for location in version_locations:
        for entry in _walk(os.path.join(top, location), recursive):
            name = entry.name
            if not name.endswith(".py") or name == "__init__.py" or name.startswith(".#"):
                continue
            st = entry.stat()
            if st.st_mtime_ns > newest:
                try:
                    with open(entry.path, "rb") as fh:
                        rows.append((entry.path, blob_id(fh.read(), object_format)))
                    racy = True
                    continue
                except OSError:
                    pass  # gone since the listing: its stat stands for it
            rows.append((entry.path, st.st_size, st.st_mtime_ns, st.st_ino))
    signed = marshal.dumps((object_format, recursive, tuple(version_locations), rows))
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
