"""What every snapshot backend shares: the record of a snapshot, the protocol, keys, progress lines.

This module imports nothing heavy: the git hook reaches it through ``backend_for_url``.
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TextIO

from branchmig.errors import SessionsBlockingError, SnapshotError
from branchmig.process import Progress

if TYPE_CHECKING:
    import threading

__all__ = [
    "CLOCK",
    "KEY_PATTERN",
    "Clock",
    "LiveLine",
    "Progress",
    "SessionsBlockingError",
    "SnapshotBackend",
    "StoredSnapshot",
    "check_key",
    "check_restore_keys",
    "format_size",
]

KEY_PATTERN = re.compile(r"[a-z0-9_-]{1,40}")


# Operations quicker than this are not worth a progress line.
PROGRESS_AFTER_SECONDS = 0.5
# On a terminal, one slower than this shows a line redrawn in place while it runs.
LIVE_AFTER_SECONDS = 1.0
LIVE_EVERY_SECONDS = 0.5


class Clock:
    """The time a progress report reads, and how the live line waits for its next
    redraw. Tests pass one whose time moves only when they say."""

    def now(self) -> float:
        return time.perf_counter()

    def wait_until(self, done: threading.Event, deadline: float) -> bool:
        """Wait until ``now()`` reaches ``deadline`` or ``done`` is set; whether it is."""
        return done.wait(max(0.0, deadline - self.now()))


CLOCK = Clock()


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


class LiveLine:
    """A line on a terminal redrawn in place while a save or restore runs, from
    ``LIVE_AFTER_SECONDS`` on, every ``LIVE_EVERY_SECONDS``: ``"saving: 1.2 GB of 3.0 GB,
    4.5 s"``. ``so_far`` gives the bytes written yet, ``total`` those expected (asked once);
    they run on the line's own thread, so they stat files or open their own connections,
    and one that fails leaves its size out. ``clock`` tells the time and waits for it."""

    def __init__(
        self,
        stream: TextIO,
        doing: str,
        *,
        so_far: Callable[[], int] | None = None,
        total: Callable[[], int] | None = None,
        start: float | None = None,
        clock: Clock = CLOCK,
    ) -> None:
        self.stream = stream
        self.doing = doing
        self.so_far = so_far
        self.total = total
        self.clock = clock
        self.start = clock.now() if start is None else start
        self._total_size: int | None = None
        import threading  # only a terminal's live line needs it

        self._done = threading.Event()
        self._lock = threading.Lock()  # a redraw and the final clearing never interleave
        self._stopped = False
        self._width = 0  # of the longest line drawn: what a shorter one, or clearing, covers
        self._thread = threading.Thread(target=self._run, name="branchmig-live-line", daemon=True)

    def __enter__(self) -> LiveLine:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        with self._lock:
            self._stopped = True
            if self._width:  # the summary line that follows starts on a clean line
                self._write("\r" + " " * self._width + "\r")
        self._thread.join(timeout=LIVE_EVERY_SECONDS)

    def text(self) -> str:
        elapsed = f"{self.clock.now() - self.start:.1f} s"
        done = _measured(self.so_far)
        if self._total_size is None:
            self._total_size = _measured(self.total)
        total = self._total_size
        if done is not None and total is not None:
            return f"{self.doing}: {format_size(done)} of {format_size(total)}, {elapsed}"
        if done is not None:
            return f"{self.doing}: {format_size(done)} so far, {elapsed}"
        if total is not None:
            return f"{self.doing} {format_size(total)}: {elapsed}"
        return f"{self.doing}: {elapsed}"

    def _run(self) -> None:
        # The fast path: finished before the first deadline, nothing is drawn.
        deadline = self.start + LIVE_AFTER_SECONDS
        while not self.clock.wait_until(self._done, deadline):
            deadline = self.clock.now() + LIVE_EVERY_SECONDS
            line = self.text()
            with self._lock:
                if self._stopped:
                    return
                self._write("\r" + line.ljust(self._width))
                self._width = max(self._width, len(line))

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed terminal: the work goes on without the line
            pass


def _measured(size: Callable[[], int] | None) -> int | None:
    if size is None:
        return None
    try:
        return size()
    except Exception:  # noqa: BLE001 - a size on a progress line is never worth a failure
        return None


def _watched(stream: TextIO) -> bool:
    """A person sees ``stream``: a terminal, and not ``branchmig -q``. The CLI keeps its
    options as the click context's object and reads ``quiet`` there when it prints a
    progress line; the live line does the same (the git hook loads no click, has no -q)."""
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False
    click = sys.modules.get("click")
    ctx = None if click is None else click.get_current_context(silent=True)
    options = None if ctx is None else ctx.find_object(dict)
    return not (isinstance(options, dict) and options.get("quiet"))


_DOING = {"saved": "saving", "restored": "restoring", "dumped": "dumping"}


@contextmanager
def reporting(
    progress: Progress | None,
    verb: str,
    size: Callable[[], int],
    *,
    so_far: Callable[[], int] | None = None,
    total: Callable[[], int] | None = None,
    clock: Clock = CLOCK,
) -> Iterator[None]:
    """Report ``"<verb> 1.0 GB in 0.8 s (1.2 GB/s)"`` when the block took long enough.

    Meanwhile, when stderr is a terminal and progress lines are wanted, a ``LiveLine``
    (given ``so_far`` and ``total``) shows the block is still at work."""
    start = clock.now()
    if progress is None or not _watched(sys.stderr):
        yield
    else:
        doing = _DOING.get(verb, verb)
        with LiveLine(sys.stderr, doing, so_far=so_far, total=total, start=start, clock=clock):
            yield
    elapsed = clock.now() - start
    if progress is not None and elapsed >= PROGRESS_AFTER_SECONDS:
        nbytes = size()
        progress(
            f"{verb} {format_size(nbytes)} in {elapsed:.1f} s ({format_size(nbytes / elapsed)}/s)"
        )
