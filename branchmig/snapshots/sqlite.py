"""SQLite snapshots: copies of the live file made and put back with the online backup API.

Both directions go through ``sqlite3.Connection.backup``, which reads a consistent state
even in WAL mode. A restore writes the snapshot *into* the live file in one transaction:
a process that keeps the database open (``flask run`` in another terminal) sees the
restored data. Replacing the file instead would leave it working on a deleted inode.
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import time
from pathlib import Path

from branchmig.errors import SnapshotError
from branchmig.snapshots.base import (
    KEY_PATTERN,
    Progress,
    StoredSnapshot,
    check_key,
    check_restore_keys,
    reporting,
    short_hash,
)
from branchmig.snapshots.folder import SnapshotFolder
from branchmig.urls import sqlite_path

__all__ = ["SQLiteBackend"]

# How long a restore waits for another connection's transaction on the live file to end.
BUSY_TIMEOUT_SECONDS = 10.0
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


class SQLiteBackend:
    """Snapshots of one SQLite file, kept as SQLite files in ``store_dir``."""

    name = "sqlite"

    def __init__(self, url: str, *, store_dir: Path, progress: Progress | None = None) -> None:
        self.live = sqlite_path(url)
        self.store_dir = store_dir
        self.folder = SnapshotFolder(store_dir)
        self.progress = progress
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", self.live.stem)[:40] or "db"
        # A hash of where the file is tells apart two app.db files. Where the store is a
        # repository's .git/branchmig/snapshots, that is the path from the repository's
        # folder, so the copies are still found after the repository is moved; copies named
        # by the absolute path (the earlier form) are found too while it has not moved.
        self._legacy_prefix = f"sqlite-{stem}-{short_hash(str(self.live))}__"
        self._prefix = self._legacy_prefix
        anchor = _repository_folder(store_dir)
        if anchor is not None:
            where = os.path.relpath(self.live, anchor)
            self._prefix = f"sqlite-{stem}-{short_hash(f'repo:{where}')}__"

    def describe(self) -> str:
        return f"SQLite file {self.live}"

    def _name(self, key: str) -> str:
        """The copy's file name: the earlier form while such a copy exists."""
        name = f"{self._prefix}{check_key(key)}.db"
        if self._prefix != self._legacy_prefix and not self.folder.file(name).exists():
            legacy = f"{self._legacy_prefix}{key}.db"
            if self.folder.file(legacy).is_file():
                return legacy
        return name

    def path_of(self, key: str) -> Path:
        return self.folder.file(self._name(key))

    def exists(self, key: str) -> bool:
        return self.path_of(key).is_file()

    def live_size(self) -> int:
        return _file_size(self.live)

    def stored(self) -> list[StoredSnapshot]:
        found = []
        prefixes = dict.fromkeys((self._prefix, self._legacy_prefix))
        for prefix in prefixes:
            for path in self.folder.files(prefix, ".db"):
                key = path.name[len(prefix) : -len(".db")]
                if KEY_PATTERN.fullmatch(key):
                    found.append(self._record(key, path))
        return sorted(found, key=lambda snap: snap.key)

    def save(self, key: str) -> StoredSnapshot:
        name = self._name(key)
        try:
            # The partial file is made 0600 before SQLite opens it; SQLite gives its
            # -wal/-shm files the same mode.
            with self.folder.writing(name) as partial:
                if self.live.is_file():
                    with reporting(
                        self.progress,
                        "saved",
                        lambda: _file_size(partial),
                        so_far=lambda: _file_size(partial),
                        total=self.live_size,
                    ):
                        if not self._copy_file_while_shared(partial, key=key):
                            self._copy(
                                source=self.live, destination=partial, action="save", key=key
                            )
                # else: the 0-byte file is an empty database, "nothing here yet".
        except OSError as err:  # a full disk, a file-size limit, a folder not writable
            raise SnapshotError(
                f"Cannot save snapshot {key!r} of {self.describe()} into {self.store_dir}: "
                f"{err.strerror or err}; free some space, then run the command again"
            ) from err
        return self._record(key, self.folder.file(name))

    def restore(self, key: str, *, keep_current_as: str | None = None) -> None:
        snapshot = self.path_of(key)
        if not snapshot.is_file():
            raise SnapshotError(
                f"There is no snapshot {key!r} of {self.describe()}. Run: branchmig snapshot list"
            )
        check_restore_keys(self, key, keep_current_as)
        if keep_current_as is not None:
            self.save(keep_current_as)
        if not self.live.parent.is_dir():
            raise SnapshotError(
                f"Cannot restore snapshot {key!r}: the folder of {self.describe()} does not exist."
            )
        with reporting(
            self.progress, "restored", self.live_size, total=lambda: _file_size(snapshot)
        ):
            self._copy(source=snapshot, destination=self.live, action="restore", key=key)
        self.folder.remove(self._name(key))

    def drop(self, key: str) -> None:
        self.folder.remove(self._name(key))

    def _record(self, key: str, path: Path) -> StoredSnapshot:
        return StoredSnapshot(key=key, backend=self.name, location=str(path), size=_file_size(path))

    def _copy_file_while_shared(self, destination: Path, *, key: str) -> bool:
        """Copy the file itself, at the speed of cp, when a lock makes that consistent
        (the backup API copies page by page through the pager: 5-7x slower than cp).

        Rollback-journal mode: a SHARED lock keeps every writer out. WAL mode: after a
        TRUNCATE checkpoint, ``BEGIN IMMEDIATE`` keeps writers out and an empty -wal file
        proves the main file holds everything. Otherwise (readers kept the checkpoint from
        finishing): False, and the backup API does it."""
        try:
            conn = sqlite3.connect(self.live, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        except sqlite3.Error:
            return False
        try:
            wal_mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"
            if wal_mode:
                # Don't wait for readers here: if they block the checkpoint, the backup
                # API copes with them.
                conn.execute("PRAGMA busy_timeout = 0")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
                conn.execute("BEGIN IMMEDIATE")
                wal = Path(f"{self.live}-wal")
                if wal.exists() and wal.stat().st_size > 0:
                    conn.execute("ROLLBACK")
                    return False
            else:
                conn.execute("BEGIN")
                # Reading takes the SHARED lock (and rolls back a hot journal first).
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            copy_file(self.live, destination)
            conn.execute("ROLLBACK")
            return True
        except sqlite3.Error as err:
            raise SnapshotError(
                f"Cannot save snapshot {key!r} of {self.describe()}: {err}."
            ) from err
        finally:
            conn.close()

    def _copy(self, *, source: Path, destination: Path, action: str, key: str) -> None:
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS

        def give_up_when_locked(status: int, remaining: int, total: int) -> None:
            if status in (_SQLITE_BUSY, _SQLITE_LOCKED) and time.monotonic() > deadline:
                raise SnapshotError(
                    f"Cannot {action} snapshot {key!r}: {self.describe()} stayed locked by "
                    f"another connection for {BUSY_TIMEOUT_SECONDS:.0f} s (an open write "
                    "transaction?). Finish or close it and run the command again."
                )

        try:
            src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_SECONDS)
            try:
                dst = sqlite3.connect(destination, timeout=BUSY_TIMEOUT_SECONDS)
                try:
                    # pages=-1: the whole copy is one step, so one transaction on the target.
                    src.backup(dst, pages=-1, progress=give_up_when_locked, sleep=0.05)
                finally:
                    dst.close()
            finally:
                src.close()
        except sqlite3.Error as err:
            raise SnapshotError(
                f"Cannot {action} snapshot {key!r} of {self.describe()}: {err}."
            ) from err


def copy_file(source: Path, destination: Path) -> None:
    """What ``cp`` does: ``copy_file_range``, which lets the kernel (or the filesystem,
    by sharing extents) copy without the data passing through this process; Python's
    ``shutil.copyfile`` (``sendfile``) where it is not available."""
    try:
        with open(source, "rb") as src, open(destination, "wb") as dst:
            left = os.fstat(src.fileno()).st_size
            while left > 0:
                done = os.copy_file_range(src.fileno(), dst.fileno(), left)
                if done == 0:
                    break
                left -= done
            return
    except (AttributeError, OSError) as err:
        if isinstance(err, OSError) and err.errno not in _NO_COPY_FILE_RANGE:
            raise
    import shutil

    shutil.copyfile(source, destination)


_NO_COPY_FILE_RANGE = {errno.ENOSYS, errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM}


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _repository_folder(store_dir: Path) -> Path | None:
    """The folder holding ``.git`` when ``store_dir`` is its ``branchmig/snapshots``."""
    branchmig = store_dir.parent
    git_dir = branchmig.parent
    if store_dir.name == "snapshots" and branchmig.name == "branchmig" and git_dir.name == ".git":
        return git_dir.parent
    return None
