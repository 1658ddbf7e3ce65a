"""What every snapshot backend shares: the record of a snapshot, the protocol, URL masking.

This module imports nothing heavy: the git hook reaches it through ``backend_for_url``.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from branchmig.errors import SnapshotError

__all__ = [
    "KEY_PATTERN",
    "Progress",
    "SessionsBlockingError",
    "SnapshotBackend",
    "StoredSnapshot",
    "check_key",
    "check_restore_keys",
    "format_size",
    "mask_url",
    "parse_server_url",
]

KEY_PATTERN = re.compile(r"[a-z0-9_-]{1,40}")

Progress = Callable[[str], None]

# Operations quicker than this are not worth a progress line.
PROGRESS_AFTER_SECONDS = 0.5


@dataclass(frozen=True)
class StoredSnapshot:
    key: str  # branchmig's id for it: [a-z0-9_-]{1,40}, chosen by the caller
    backend: str  # "sqlite" | "postgresql" | "mysql"
    location: str  # file path, or database name on the server
    size: int  # bytes


class SnapshotBackend(Protocol):
    """Copies of one live database, saved and restored whole."""

    name: str

    def save(self, key: str) -> StoredSnapshot:
        """Copy the live database into snapshot ``key``, replacing any snapshot of that key."""
        ...

    def restore(self, key: str, *, keep_current_as: str | None = None) -> None:
        """Make the live database hold snapshot ``key``'s content; the snapshot is consumed.

        With ``keep_current_as``, the content replaced is kept as that snapshot.
        """
        ...

    def drop(self, key: str) -> None:
        """Delete snapshot ``key``; nothing happens when there is none."""
        ...

    def exists(self, key: str) -> bool: ...

    def stored(self) -> list[StoredSnapshot]:
        """All snapshots of this live database that this backend holds, sorted by key."""
        ...

    def live_size(self) -> int: ...

    def describe(self) -> str:
        """The live database in words, for messages; never shows a password."""
        ...


class SessionsBlockingError(SnapshotError):
    """Other sessions hold the live database open, so it cannot be copied or renamed.
    ``message`` says what and who; the advice that follows it fits a command line, and
    ``without_advice()`` lets a git hook give its own."""

    ADVICE = ("Close them (stop the app server, dispose its pool), or run the command again "
              "with --terminate-connections.")

    def __init__(self, message: str, *, sessions: list[str]) -> None:
        super().__init__(f"{message} {self.ADVICE}")
        self.message = message
        self.sessions = sessions

    def without_advice(self) -> str:
        return self.message


def check_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):
        raise SnapshotError(
            f"Snapshot key {key!r} is not valid: use 1 to 40 of a-z, 0-9, '_' and '-'."
        )
    return key


def check_restore_keys(backend: SnapshotBackend, key: str, keep_current_as: str | None) -> None:
    """Both keys of a restore are valid, and the content replaced is not kept under the
    key being restored (which the restore consumes)."""
    check_key(key)
    if keep_current_as is not None and check_key(keep_current_as) == key:
        raise SnapshotError(
            f"Cannot keep the current content of {backend.describe()} as snapshot {key!r}: "
            "that is the snapshot being restored. Choose another name."
        )


# The same split as SQLAlchemy's make_url: the password runs to the first "@".
_PASSWORD_IN_AUTHORITY = re.compile(r"^(?P<head>[\w+.-]+://[^:/@]*):(?P<password>[^@]*)@")
_PASSWORD_IN_QUERY = re.compile(r"(?P<head>[?&]password=)[^&]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """The URL with its password shown as ``***``, in the authority and in the query.

    ``postgresql://app:s3cret@db/app`` → ``postgresql://app:***@db/app``. Pure text work,
    so it also masks URLs SQLAlchemy would refuse.
    """
    masked = _PASSWORD_IN_AUTHORITY.sub(r"\g<head>:***@", url, count=1)
    return _PASSWORD_IN_QUERY.sub(r"\g<head>***", masked)


def short_hash(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def truncate_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` bytes of UTF-8, never inside a character."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def format_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


@contextmanager
def reporting(progress: Progress | None, verb: str, size: Callable[[], int]) -> Iterator[None]:
    """Report ``"<verb> 1.0 GB in 0.8 s (1.2 GB/s)"`` when the block took long enough."""
    start = time.perf_counter()
    yield
    elapsed = time.perf_counter() - start
    if progress is not None and elapsed >= PROGRESS_AFTER_SECONDS:
        nbytes = size()
        progress(
            f"{verb} {format_size(nbytes)} in {elapsed:.1f} s ({format_size(nbytes / elapsed)}/s)"
        )


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed and make it readable by its owner only."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
    except OSError as err:
        raise SnapshotError(
            f"Cannot use {str(path)!r} as the snapshot folder: {err.strerror or err}."
        ) from err
    return path


def parse_server_url(url: str) -> tuple[str, Any]:
    """The masked URL and SQLAlchemy's parsed ``URL`` of a database on a server, which
    must name a database."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    masked = mask_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise SnapshotError(f"Cannot read the database URL {masked}: {err}") from err
    if not parsed.database:
        raise SnapshotError(f"The database URL {masked} names no database: nothing to snapshot.")
    return masked, parsed
