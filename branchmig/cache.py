"""What branchmig remembers between runs to answer faster, in one place, with one rule
for when a working-tree file may be trusted unchanged without reading it.

Every cache here is keyed by what names its content: a blob id, the tree ids of the
folders at a commit, or the working tree's files by their stat (``stat_key``, what git's
index compares) with git's racily-clean rule (``changed_since`` a moment ago: read the
file instead). Losing any of them costs only time; each is listed, with what it saves,
in docs/how-it-works.md ("What branchmig remembers"). The database remembered from
env.py (``remembered.py``, keyed by what env.py read) and the record of applied scripts
(``state.py``) are not caches: they hold facts no ref gives back.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from branchmig.errors import StateError
from branchmig.graph import Revision
from branchmig.headers import parse_header
from branchmig.layout import header_cache_path, heads_memo_path, script_sets_path, write_private

CACHE_VERSION = 2  # 2: headers in every form Alembic reads; stats as git's index keeps them
# A file whose mtime or ctime is this recent may change again within the same clock tick
# without its stat changing: like git's "racily clean" entries, it is read, not trusted.
RACY_NS = 2_000_000_000


# -- the rule: has this working-tree file changed? ------------------------------------------


def stat_key(st: os.stat_result) -> tuple[int, ...]:
    """What git's index compares to trust a file unchanged without reading it
    (``match_stat_data``): mode, inode, device, owner and size (with the link count: the
    first fields of the stat, taken in one slice), mtime and ctime to the nanosecond. The
    ctime is what catches a file rewritten in place with its mtime put back (``os.utime``,
    ``touch -r``, ``cp -p``): no program can set it."""
    return (*st[:7], st.st_mtime_ns, st.st_ctime_ns)


def racy_cutoff() -> int:
    """The time (ns) after which a file's stat is too recent to be trusted."""
    return time.time_ns() - RACY_NS


def changed_since(st: os.stat_result, since_ns: int) -> bool:
    """Whether the file changed after ``since_ns``, as far as its stat tells: git's racy
    rule looks at the mtime; the ctime too here, so a file rewritten with its mtime put
    back is not trusted by a stat taken in the same clock tick as the rewrite."""
    return st.st_ctime_ns > since_ns or st.st_mtime_ns > since_ns


def _write(path: Path, data: bytes) -> None:
    """Write a cache file; one that cannot be written only costs time."""
    with contextlib.suppress(StateError):
        write_private(path, data)


# -- parsed headers, by blob id -------------------------------------------------------------


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
        body = {"version": CACHE_VERSION, "headers": self.headers, "stats": self.stats}
        _write(self.path, json.dumps(body).encode())
        self.dirty = False


# -- whole script sets, by signature --------------------------------------------------------


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
        _write(
            self._path(signature), marshal.dumps((CACHE_VERSION, signature, rows, list(warnings)))
        )
        try:
            kept = sorted(self.folder.glob("*.marshal"), key=lambda f: f.stat().st_mtime_ns)
            for old in kept[: -self.KEEP]:
                old.unlink()
        except OSError:
            pass  # pruned next time


# -- the answers of `heads`, by signature ----------------------------------------------------


class HeadsMemo:
    """A small JSON file of the last answers of ``heads``, by signature: what lets the
    warm ``heads`` answer before click loads."""

    LIMIT = 64

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, signature: str | None) -> dict[str, Any] | None:
        if signature is None:
            return None
        found: dict[str, Any] | None = self._load().get(signature)
        return found

    def put(self, signature: str | None, value: dict[str, Any]) -> None:
        if signature is None:
            return
        data = self._load()
        data.pop(signature, None)
        data[signature] = value
        while len(data) > self.LIMIT:
            data.pop(next(iter(data)))
        _write(self.path, json.dumps(data).encode())


def header_cache(common_dir: Path) -> HeaderCache:
    return HeaderCache(header_cache_path(common_dir))


def script_set_cache(common_dir: Path) -> ScriptSetCache:
    return ScriptSetCache(script_sets_path(common_dir))


def heads_memo(common_dir: Path) -> HeadsMemo:
    return HeadsMemo(heads_memo_path(common_dir))
