"""What branchmig keeps under the git common dir (``.git/branchmig/``): a lock, the
journal of a switch in progress, copies of every script it saw applied, what each
database has applied (by script text), and the snapshot index. Private to the owner."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import marshal
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from branchmig.errors import LockedError
from branchmig.gitrepo import blob_id, format_in_files
from branchmig.graph import Revision
from branchmig.layout import private_folder, write_private
from branchmig.urls import mask_url, relative_sqlite

APPLIED_FORMAT = 1
# The exact names of the branches whose own snapshot waits for them, one a line (the hook
# template reads it): not a file per branch, where `x` would block `x/y` and `a` be `A`
# on a case-insensitive filesystem.
RESTORE_ON_LIST = "restore-on.list"


def _write_json(path: Path, data: Any) -> None:
    write_private(path, json.dumps(data, separators=(",", ":")).encode(), durable=True)


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return default


def database_key(url_without_password: str) -> str:
    return hashlib.sha1(url_without_password.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class DatabaseId:
    """The live database: its URL (password included: never shown), the URL as shown,
    and the key its records are kept under. The key is the masked URL's hash, which
    survives moving the repository; a relative SQLite path in a linked worktree is another
    file than the main worktree's, so its key adds the worktree's name. ``aliases`` would
    name keys an earlier branchmig used."""

    url: str = field(repr=False)
    masked: str
    key: str
    aliases: tuple[str, ...] = ()

    @classmethod
    def of(cls, url: str, *, worktree: str = "") -> DatabaseId:
        """``worktree``: the linked worktree's name under the git common dir ("" for the
        main one)."""
        from urllib.parse import unquote

        masked = mask_url(url)
        shown = unquote(masked)  # a database named 'my "db" ü' reads as such, not %22
        if worktree and url.startswith("sqlite") and relative_sqlite(url):
            return cls(url, shown, database_key(f"{masked}@{worktree}"))
        return cls(url, shown, database_key(masked))

    @classmethod
    def of_all(cls, urls: Sequence[tuple[str, str]], *, worktree: str = "") -> DatabaseId:
        """The project's databases as one, given as (name, URL) pairs with the default
        first: one database is itself; several (Flask-Migrate ``--multidb``) share one key,
        as they share snapshots and an owner."""
        ids = [cls.of(url, worktree=worktree) for _, url in urls]
        if len(ids) == 1:
            return ids[0]
        shown = ids[0].masked + "".join(
            f" + {name}: {i.masked}" for (name, _), i in zip(urls[1:], ids[1:], strict=True)
        )
        return cls(urls[0][1], shown, database_key("|".join(i.key for i in ids)))

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key, *self.aliases)


@dataclass
class Journal:
    """A move in progress: what to put back if it dies half-way."""

    operation: str  # "switch" | "sync" | "restore" (``snapshot restore``; ``to``: its key)
    pid: int
    started: float
    database: str  # database key
    from_commit: str | None
    from_branch: str | None
    to: str
    # The key the database being left is saved under (kept for its branch, or dropped
    # after the move when it is only a safety copy). Its copy existing means the live
    # database may have been touched since: recovery restores it.
    safety_snapshot: str | None
    checked_out: bool = False
    # "start": nothing touched yet; "saved": the database left is saved (and the entering
    # branch's snapshot may be live); "migrating": migrations run; "done": they succeeded.
    phase: str = "start"
    restored_snapshot: str | None = None  # the entering branch's snapshot, made live
    resaved_snapshot: str | None = None  # that content saved again before migrating on
    to_commit: str | None = None
    # Without a snapshot: the step running now, [direction, revision], so that a kill
    # names what may be half made.
    in_flight: list[str] | None = None
    to_branch: str | None = None
    # "done": the keys to drop now that the move succeeded (a kill then finishes it).
    drops: list[str] = field(default_factory=list)
    # A restore's snapshot is to be kept: saved again from the database it made live.
    keep_restored: bool = False


def moving(operation: str, to: str) -> str:
    """A journal's move in words: "a switch to 'feature2'", "a restore of snapshot 'x'"."""
    if operation == "restore":
        return f"a restore of snapshot '{to}'"
    return f"a {operation} to '{to}'"


@dataclass(frozen=True)
class Owner:
    """Whom the live database belongs to: the branch (exact name) and commit it was last
    brought to, and its heads then. Written after every move branchmig makes."""

    branch: str | None
    commit: str | None
    heads: tuple[str, ...]
    at: float = 0.0  # when it was recorded (seconds since the epoch)
    # The size of HEAD's reflog then: the checkouts logged after that offset happened
    # since (-1: not known).
    reflog: int = -1


@dataclass(frozen=True)
class Suspect:
    """A move killed with no snapshot to put back: ``revision`` was running
    (``direction``) and may be half made (SQLite and MariaDB run DDL outside
    transactions). Cleared by the next move that completes."""

    operation: str
    to: str
    direction: str
    revision: str
    pid: int


@dataclass(frozen=True)
class Failure:
    """The last move that failed on a migration step: the step (``direction`` of
    ``revision``, whose script at ``path`` had blob ``blob``), what it raised, the fix
    branchmig could name, and the database's heads it left. Cleared by the next move that
    completes; ``status`` reads it."""

    operation: str  # "switch" | "sync" (the hooks run sync)
    to: str  # the branch or ref moved to, or "the working tree"
    direction: str
    revision: str
    path: str
    blob: str
    cause: str
    fix: str | None
    heads: tuple[str, ...]
    restored: bool  # the database was put back as it was before the move
    rehearsal: bool = False  # it failed on a copy; the live database was not touched
    half_made: str | None = None  # the step left perhaps half made (no snapshot)
    at: float = 0.0


@dataclass
class SnapshotRecord:
    """A snapshot in the index. What it holds (revision id -> blob id of the script that
    applied it) is kept beside the index, read only when a switch may restore it."""

    key: str
    branch: str | None
    commit: str | None
    heads: list[str]
    database: str  # database key
    backend: str
    size: int
    created: float = field(default_factory=time.time)
    purpose: str = "branch"  # "branch" | "safety" | "manual" | "replaced"


class State:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._applied: dict[str, dict[str, Revision]] = {}
        self._object_format: str | None = None

    def _current_id(self, blob: str) -> str:
        """``blob`` as the repository names it now: an id an earlier branchmig computed as
        SHA-1 in a SHA-256 repository is the kept script's SHA-256 id (else as it is)."""
        if self._object_format is None:
            found = format_in_files(self.root.parent)  # the git common dir's config
            self._object_format = found.object_format if found else "sha1"
        width = 64 if self._object_format == "sha256" else 40
        if not isinstance(blob, str) or len(blob) == width or len(blob) not in (40, 64):
            return blob
        text = self.kept_script(blob)
        if text is None:
            return blob
        current = blob_id(text, self._object_format)
        self.keep_script(current, text)
        return current

    # -- lock -------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One branchmig at a time per repository (two checkouts never migrate one
        database at once)."""
        private_folder(self.root)
        path = self.root / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").partition("\n")[0]
                # Empty only in the instant between its lock and its write below.
                who = f"(pid {holder})" if holder.strip().isdigit() else "(pid not known yet)"
                raise LockedError(
                    f"Another branchmig {who} is migrating this repository's "
                    "database; wait for it, then run: branchmig status"
                ) from None
            # Written over, then cut to length: a reader never sees the file empty once
            # any branchmig has held it.
            mine = f"{os.getpid()}\n".encode()
            os.pwrite(fd, mine, 0)
            os.ftruncate(fd, len(mine))
            yield
        finally:
            os.close(fd)

    # -- the database env.py last gave (see remembered.py) ------------------------------

    def _remembered_path(self, worktree: str) -> Path:
        return self.root / "remembered" / f"{worktree or '-main-'}.json"

    def remembered(self, worktree: str) -> Any:
        return _read_json(self._remembered_path(worktree), None)

    def remember(self, worktree: str, data: Mapping[str, Any] | None) -> None:
        path = self._remembered_path(worktree)
        if data is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        elif _read_json(path, None) != data:
            _write_json(path, data)

    def note_left_on(self, worktree: str, branch: str | None) -> None:
        """The branch this worktree's database was last brought to (empty: detached): the
        post-checkout hook's shell runs branchmig when a checkout on the same commit
        enters another branch, so that the branch left keeps its rows."""
        line = f"{branch}\n" if branch is not None else "\n"
        path = self.root / "left-on" / (worktree or "-main-")
        with contextlib.suppress(OSError):
            if path.read_text(encoding="utf-8", errors="surrogateescape") == line:
                return
        write_private(path, line.encode("utf-8", "surrogateescape"))

    # -- journal ------------------------------------------------------------------------

    @property
    def journal_path(self) -> Path:
        return self.root / "journal.json"

    def write_journal(self, journal: Journal, *, durable: bool = True) -> None:
        """``durable=False`` where losing the write to a power cut is safe (the older
        journal then undoes a move instead of finishing it)."""
        write_private(
            self.journal_path,
            json.dumps(asdict(journal), separators=(",", ":")).encode(),
            durable=durable,
        )

    def read_journal(self) -> Journal | None:
        data = _read_json(self.journal_path, None)
        if not isinstance(data, dict):
            return None
        known = set(Journal.__dataclass_fields__)
        return Journal(**{k: v for k, v in data.items() if k in known})

    def clear_journal(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.journal_path.unlink()

    # -- scripts seen applied -------------------------------------------------------------

    def keep_script(self, blob: str, text: bytes) -> None:
        path = self.root / "scripts" / f"{blob}.py"
        if not path.exists():
            write_private(path, text)

    def has_kept(self, blob: str) -> bool:
        return (self.root / "scripts" / f"{blob}.py").is_file()

    def kept_script(self, blob: str) -> bytes | None:
        try:
            return (self.root / "scripts" / f"{blob}.py").read_bytes()
        except FileNotFoundError:
            return None

    def applied(self, database: str) -> dict[str, Revision]:
        """The headers of the revisions this database was last seen to have (read once
        per State: a switch asks before and after)."""
        if database not in self._applied:
            self._applied[database] = {}
            with contextlib.suppress(OSError, ValueError, EOFError, TypeError):
                version, rows = marshal.loads(self._applied_path(database).read_bytes())
                if version == APPLIED_FORMAT:
                    self._applied[database] = {
                        rev: Revision(
                            id=rev,
                            down=down,
                            labels=labels,
                            depends_on=depends,
                            path=path,
                            blob=self._current_id(blob),
                        )
                        for rev, down, labels, depends, path, blob in rows
                    }
        return dict(self._applied[database])

    def record_applied(self, database: str, revisions: Mapping[str, Revision]) -> None:
        """Remember ``revisions`` as what ``database`` has. Written in marshal's format,
        not JSON: on a long history this record is read and written on every switch, and
        marshal does both several times faster. Losing it costs a search of the refs."""
        rows = [(r.id, r.down, r.labels, r.depends_on, r.path, r.blob) for r in revisions.values()]
        write_private(self._applied_path(database), marshal.dumps((APPLIED_FORMAT, rows)))
        self._applied[database] = dict(revisions)

    def _applied_path(self, database: str) -> Path:
        return self.root / "applied" / f"{database}.marshal"

    # -- snapshot index -------------------------------------------------------------------

    @property
    def snapshot_dir(self) -> Path:
        return private_folder(self.root / "snapshots")

    # -- whom the live database belongs to, and what a kill may have left half made -----

    def owner(self, database: str) -> Owner | None:
        data = _read_json(self.root / "owners" / f"{database}.json", None)
        if not isinstance(data, dict):
            return None
        return Owner(
            branch=data.get("branch"),
            commit=data.get("commit"),
            heads=tuple(data.get("heads") or ()),
            at=float(data.get("at") or 0),
            reflog=int(data.get("reflog", -1)),
        )

    def set_owner(self, database: str, owner: Owner) -> None:
        # Not waited for: a record lost to a power cut only sends the next move to the
        # reflog to find whom the database belongs to.
        data = {
            "branch": owner.branch,
            "commit": owner.commit,
            "heads": list(owner.heads),
            "at": time.time(),
            "reflog": owner.reflog,
        }
        write_private(self.root / "owners" / f"{database}.json", json.dumps(data).encode())

    def suspect(self, database: str) -> Suspect | None:
        data = _read_json(self.root / "suspects" / f"{database}.json", None)
        if not isinstance(data, dict):
            return None
        known = set(Suspect.__dataclass_fields__)
        with contextlib.suppress(TypeError):
            return Suspect(**{k: v for k, v in data.items() if k in known})
        return None

    def set_suspect(self, database: str, suspect: Suspect | None) -> None:
        path = self.root / "suspects" / f"{database}.json"
        if suspect is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        else:
            _write_json(path, asdict(suspect))

    def failure(self, database: str) -> Failure | None:
        data = _read_json(self.root / "failures" / f"{database}.json", None)
        if not isinstance(data, dict):
            return None
        known = set(Failure.__dataclass_fields__)
        with contextlib.suppress(TypeError):
            found = Failure(**{k: v for k, v in data.items() if k in known})
            return replace(found, heads=tuple(found.heads))
        return None

    def set_failure(self, database: str, failure: Failure | None) -> None:
        path = self.root / "failures" / f"{database}.json"
        if failure is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        else:
            _write_json(path, asdict(failure))

    def snapshots(self) -> list[SnapshotRecord]:
        known = set(SnapshotRecord.__dataclass_fields__)
        return [
            SnapshotRecord(**{k: v for k, v in d.items() if k in known})
            for d in _read_json(self._index_path, [])
        ]

    def snapshot_applied(self, key: str) -> dict[str, str] | None:
        """What snapshot ``key`` holds (revision id -> script blob id); None if unknown."""
        with contextlib.suppress(OSError, ValueError, EOFError, TypeError):
            version, applied = marshal.loads(self._holds_path(key).read_bytes())
            if version == APPLIED_FORMAT and isinstance(applied, dict):
                return {rev: self._current_id(blob) for rev, blob in applied.items()}
        for entry in _read_json(self._index_path, []):
            # An index written by an earlier branchmig held each snapshot's revisions.
            if isinstance(entry, dict) and entry.get("key") == key:
                held = entry.get("applied")
                return dict(held) if isinstance(held, dict) else None
        return None

    def save_snapshots(self, records: list[SnapshotRecord]) -> None:
        for entry in _read_json(self._index_path, []):
            # An index written by an earlier branchmig held each snapshot's revisions.
            held = entry.get("applied") if isinstance(entry, dict) else None
            if isinstance(held, dict) and not self._holds_path(entry["key"]).exists():
                self._write_holds(entry["key"], held)
        _write_json(self._index_path, [asdict(r) for r in records])
        self._mark_waiting(
            {r.branch for r in records if r.branch and r.purpose in ("branch", "manual")}
        )
        kept = {f"{r.key}.marshal" for r in records}
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.root / "snapshot-holds"):
                if name not in kept:
                    (self.root / "snapshot-holds" / name).unlink()

    def _mark_waiting(self, branches: set[str]) -> None:
        """The exact name of each branch with a snapshot of its own, one a line, in
        ``restore-on.list``: the post-checkout hook's shell runs branchmig for such a
        branch even when the migrations did not change. A failed write raises
        ``StateError``: a branch missing from the list would keep another's rows."""
        path = self.root / RESTORE_ON_LIST
        text = "".join(f"{name}\n" for name in sorted(branches) if "\n" not in name)
        try:
            current: str | None = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            current = None
        if current != text:
            write_private(path, text.encode("utf-8"), durable=True)
        # An earlier branchmig's file per branch (read by its hook until the list is
        # written): the list replaces it whole.
        old = self.root / "restore-on"
        if old.is_dir():
            import shutil  # ~4 ms with the compressors it loads, for a folder rarely there

            shutil.rmtree(old, ignore_errors=True)

    def add_snapshot(self, record: SnapshotRecord, applied: Mapping[str, str]) -> None:
        """Index ``record``, holding ``applied``: written first, so an index entry never
        points at nothing (a lost one only makes a switch migrate instead of restore)."""
        self._write_holds(record.key, applied)
        records = [r for r in self.snapshots() if r.key != record.key]
        records.append(record)
        self.save_snapshots(records)

    def remove_snapshot(self, key: str) -> None:
        self.save_snapshots([r for r in self.snapshots() if r.key != key])

    @property
    def _index_path(self) -> Path:
        return self.root / "snapshots.json"

    def _holds_path(self, key: str) -> Path:
        return self.root / "snapshot-holds" / f"{key}.marshal"

    def _write_holds(self, key: str, applied: Mapping[str, str]) -> None:
        write_private(self._holds_path(key), marshal.dumps((APPLIED_FORMAT, dict(applied))))
