"""The snapshots of a project with several databases (Flask-Migrate ``--multidb``): one key
names a copy of each, saved, restored and dropped as one.

Each database keeps its copies as its own backend does (they are named after the live
database, so one key serves all of them). A snapshot exists only when every database has
its copy: a save killed half-way leaves one that no restore uses and the next ``drop`` of
its key removes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from branchmig.errors import SnapshotError
from branchmig.snapshots.base import SnapshotBackend, StoredSnapshot


class Together:
    """``SnapshotBackend`` over several databases: ``members`` pairs each database's name
    ("" for the default one) with its backend."""

    def __init__(self, members: Sequence[tuple[str, SnapshotBackend]]) -> None:
        self.members = tuple(members)
        kinds = sorted({backend.name for _, backend in self.members})
        self.name = "+".join(kinds)

    def describe(self) -> str:
        return " and ".join(
            f"{backend.describe()} ({name or 'default'})" for name, backend in self.members
        )

    def exists(self, key: str) -> bool:
        return all(backend.exists(key) for _, backend in self.members)

    def live_size(self) -> int:
        return sum(backend.live_size() for _, backend in self.members)

    def stored(self) -> list[StoredSnapshot]:
        """The keys every database holds a copy of, their sizes summed."""
        found: dict[str, list[StoredSnapshot]] = {}
        for _, backend in self.members:
            for snap in backend.stored():
                found.setdefault(snap.key, []).append(snap)
        complete = [copies for copies in found.values() if len(copies) == len(self.members)]
        return sorted(
            (
                StoredSnapshot(
                    key=copies[0].key,
                    backend=self.name,
                    location="; ".join(c.location for c in copies),
                    size=sum(c.size for c in copies),
                )
                for copies in complete
            ),
            key=lambda snap: snap.key,
        )

    def save(self, key: str) -> StoredSnapshot:
        """A copy of every database, or none: a failure drops the copies already made."""
        copies: list[StoredSnapshot] = []
        try:
            for _, backend in self.members:
                copies.append(backend.save(key))
        except BaseException:
            for _, backend in self.members[: len(copies)]:
                with contextlib.suppress(Exception):
                    backend.drop(key)
            raise
        return StoredSnapshot(
            key=key,
            backend=self.name,
            location="; ".join(c.location for c in copies),
            size=sum(c.size for c in copies),
        )

    def restore(self, key: str, *, keep_current_as: str | None = None) -> None:
        """Every database back to its copy. A failure part-way swaps the ones already
        restored back (when their content was kept), so the databases stay together."""
        missing = [name or "default" for name, backend in self.members if not backend.exists(key)]
        if missing:
            raise SnapshotError(
                f"Snapshot {key!r} has no copy of the database{'s' if len(missing) != 1 else ''} "
                f"{', '.join(missing)}, so "
                f"it cannot be restored as a whole. Run: branchmig snapshot list"
            )
        done: list[SnapshotBackend] = []
        try:
            for _, backend in self.members:
                backend.restore(key, keep_current_as=keep_current_as)
                done.append(backend)
        except BaseException:
            if keep_current_as is not None:
                for backend in reversed(done):
                    with contextlib.suppress(Exception):
                        backend.restore(keep_current_as, keep_current_as=key)
            raise

    def drop(self, key: str) -> None:
        for _, backend in self.members:
            backend.drop(key)
