"""The folder of snapshot copies that are files, under ``.git/branchmig``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from branchmig.layout import fsync_file, fsync_folder, private_folder


class SnapshotFolder:
    """The folder of snapshot copies that are files (SQLite copies, ``pg_dump`` files).
    Its files are created, published and removed here, as everything else under
    ``.git/branchmig``; a backend only writes a copy's bytes (SQLite's backup, pg_dump)
    into the private partial file ``writing`` hands it."""

    _SIDE_FILES = ("-wal", "-shm", "-journal")

    def __init__(self, path: Path) -> None:
        self.path = path

    def file(self, name: str) -> Path:
        return self.path / name

    def files(self, prefix: str, suffix: str) -> list[Path]:
        """The copies whose names start with ``prefix`` and end with ``suffix``."""
        if not self.path.is_dir():
            return []
        return sorted(
            p for p in self.path.iterdir() if p.name.startswith(prefix) and p.name.endswith(suffix)
        )

    @contextlib.contextmanager
    def writing(self, name: str) -> Iterator[Path]:
        """A new partial file beside ``name``, readable by its owner only, for the block
        to write into; when the block succeeds it becomes ``name`` in one rename (an
        earlier copy of that name is replaced whole, never in place), else it goes.
        Raises ``OSError`` (a full disk) for the caller to name."""
        private_folder(self.path)
        self.sweep()
        target = self.file(name)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        self._remove(partial)
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            yield partial
            # On disk before its name is: a copy published by a rename may otherwise come
            # back empty after a power cut, when the live database it was taken from has
            # already been overwritten (SQLite waits for the disk; so must its copy).
            fsync_file(partial)
            os.replace(partial, target)
            fsync_folder(self.path)
        finally:
            self._remove(partial)
        for suffix in self._SIDE_FILES:  # SQLite's, of the partial file's last connection
            with contextlib.suppress(FileNotFoundError):
                Path(f"{target}{suffix}").unlink()

    def remove(self, name: str) -> None:
        """The copy ``name`` (with SQLite's side files); nothing when there is none. The
        partial files of killed writers go too (a recovery drops what they were making)."""
        self._remove(self.file(name))
        self.sweep()

    def sweep(self) -> None:
        """Remove the partial files of writers that were killed (their process is gone)."""
        for path in self.path.glob(".*.partial*"):
            pid = path.name.split(".partial")[0].rsplit(".", 1)[-1]
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            except PermissionError:
                pass  # alive, another user's

    def _remove(self, path: Path) -> None:
        for suffix in ("", *self._SIDE_FILES):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").unlink()
