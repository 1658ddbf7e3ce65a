"""The live line of a slow snapshot save or restore: drawn in place on a terminal from
one second on, with the time and the sizes, then cleared for the summary line; nothing on a
stream that is not a terminal, under ``branchmig -q``, or for a fast operation."""

from __future__ import annotations

import contextlib
import io
import os
import re
import select
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import pytest
from db_servers import mysql_connection
from e2e_projects import (
    BRANCHMIG,
    Project,
    make_seed_project,
)
from sqlalchemy.engine import make_url

import branchmig.snapshots.base as snapshots_base
from branchmig.cli import main
from branchmig.snapshots import backend_for_url
from branchmig.snapshots.base import Clock, LiveLine, reporting


class Terminal(io.StringIO):
    """What a terminal on stderr receives."""

    def isatty(self) -> bool:
        return True


def wait_for_text(stream: io.StringIO, pattern: str, *, timeout: float = 10.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while not (found := re.search(pattern, stream.getvalue())):
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} never came; got {stream.getvalue()!r}")
        time.sleep(0.02)
    return found


def live_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "branchmig-live-line"]


def on_stderr(monkeypatch: pytest.MonkeyPatch, stream: io.StringIO) -> io.StringIO:
    """``stream`` as sys.stderr for the rest of the test. Called in the test itself: pytest
    puts its own capture back on sys.stderr between a fixture's setup and the test."""
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


class ManualClock(Clock):
    """Time that moves only when the test calls ``advance``: the live line's thread waits
    for it (polling its own event), so no test sleeps for time to pass."""

    def __init__(self, now: float = 0.0) -> None:
        self._now = now

    def now(self) -> float:
        return self._now

    def wait_until(self, done: threading.Event, deadline: float) -> bool:
        while not done.wait(0.002):
            if self._now >= deadline:
                return False
        return True

    def advance(self, seconds: float) -> None:
        self._now += seconds


def test_a_slow_save_redraws_its_size_in_place_then_clears_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    terminal = on_stderr(monkeypatch, Terminal())
    clock = ManualClock(100.0)
    partial = tmp_path / "copy.db"
    lines: list[str] = []
    with reporting(
        lines.append,
        "saved",
        lambda: partial.stat().st_size,
        so_far=lambda: partial.stat().st_size,
        total=lambda: 50_000,
        clock=clock,
    ):
        partial.write_bytes(b"x" * 20_000)
        clock.advance(0.9)
        assert terminal.getvalue() == ""
        clock.advance(0.1)  # LIVE_AFTER_SECONDS: the first drawing
        wait_for_text(terminal, r"\r")
        with partial.open("ab") as more:
            more.write(b"x" * 30_000)
        clock.advance(snapshots_base.LIVE_EVERY_SECONDS)  # redrawn, the longer line
        wait_for_text(terminal, r"\rsaving: 50\.0 kB of 50\.0 kB, 1\.5 s")
        clock.advance(0.5)
    drawn = terminal.getvalue()
    assert drawn.startswith("\rsaving: 20.0 kB of 50.0 kB, 1.0 s\r"), drawn
    width = len("saving: 20.0 kB of 50.0 kB, 1.0 s")
    assert drawn.endswith("\r" + " " * width + "\r"), drawn  # cleared for the summary
    assert "\n" not in drawn
    assert lines == ["saved 50.0 kB in 2.0 s (25.0 kB/s)"]
    assert live_threads() == []


def test_a_fast_operation_starts_no_line(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = on_stderr(monkeypatch, Terminal())
    clock = ManualClock()
    lines: list[str] = []
    with reporting(lines.append, "saved", lambda: 1000, so_far=lambda: 1000, clock=clock):
        clock.advance(snapshots_base.PROGRESS_AFTER_SECONDS - 0.01)
    assert terminal.getvalue() == ""
    assert lines == []  # quicker than PROGRESS_AFTER_SECONDS: no summary either
    assert live_threads() == []


def test_without_a_terminal_only_the_summary_is_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    piped = on_stderr(monkeypatch, io.StringIO())
    clock = ManualClock()
    lines: list[str] = []
    with reporting(lines.append, "restored", lambda: 2000, total=lambda: 2000, clock=clock):
        clock.advance(1.3)
    assert piped.getvalue() == ""
    assert lines == ["restored 2.0 kB in 1.3 s (1.5 kB/s)"]


@pytest.mark.parametrize("case", ["terminal", "branchmig -q", "no progress wanted"])
def test_only_a_terminal_someone_watches_gets_the_line(
    monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    terminal = on_stderr(monkeypatch, Terminal())
    clock = ManualClock()
    lines: list[str] = []
    progress = None if case == "no progress wanted" else lines.append
    with (
        click.Context(main, obj={"quiet": case == "branchmig -q"}),
        reporting(progress, "saved", lambda: 1000, so_far=lambda: 1000, clock=clock),
    ):
        clock.advance(snapshots_base.LIVE_AFTER_SECONDS)
        if case == "terminal":
            wait_for_text(terminal, r"\r")
        else:  # no line at all: nothing waits to draw one
            assert live_threads() == []
    if case == "terminal":
        assert terminal.getvalue().startswith("\rsaving: 1.0 kB so far, 1.0 s")
    else:
        assert terminal.getvalue() == ""


@pytest.mark.parametrize(
    ("so_far", "total", "text"),
    [
        (1_200_000, 3_000_000, "saving: 1.2 MB of 3.0 MB, 2.5 s"),
        (1_200_000, None, "saving: 1.2 MB so far, 2.5 s"),
        (None, 3_000_000, "saving 3.0 MB: 2.5 s"),
        (None, None, "saving: 2.5 s"),
    ],
)
def test_the_line_says_what_is_known(so_far: int | None, total: int | None, text: str) -> None:
    line = LiveLine(
        Terminal(),
        "saving",
        start=10.0,
        so_far=None if so_far is None else lambda: so_far,
        total=None if total is None else lambda: total,
        clock=ManualClock(12.5),
    )
    assert line.text() == text


def test_a_size_that_cannot_be_read_is_left_out(tmp_path: Path) -> None:
    gone = tmp_path / "gone.dump"
    line = LiveLine(
        Terminal(),
        "dumping",
        so_far=lambda: gone.stat().st_size,
        start=0.0,
        clock=ManualClock(1.0),
    )
    assert line.text() == "dumping: 1.0 s"


@pytest.mark.parametrize("operation", ["save", "restore"])
def test_a_sqlite_snapshot_held_up_by_a_writer_shows_the_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, operation: str
) -> None:
    """A real SQLite file locked by another connection's write transaction for 1.3 s:
    the backend waits for it, and the line shows meanwhile with the size it expects."""
    terminal = on_stderr(monkeypatch, Terminal())
    live = tmp_path / "app.db"
    with sqlite3.connect(live) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO users (name) VALUES (?)", [("x" * 100,)] * 200)
    conn.close()
    lines: list[str] = []
    snaps = backend_for_url(
        f"sqlite:///{live}", store_dir=tmp_path / "snaps", progress=lines.append
    )
    if operation == "restore":
        snaps.save("kept")
    size = snaps.live_size()
    writer = sqlite3.connect(live, isolation_level=None, check_same_thread=False)
    try:
        writer.execute("BEGIN EXCLUSIVE")
        release = threading.Timer(1.3, writer.execute, args=("ROLLBACK",))
        release.start()
        if operation == "save":
            snaps.save("a")
        else:
            snaps.restore("kept")
        release.join()
    finally:
        writer.close()
    drawn = terminal.getvalue()
    expected = snapshots_base.format_size(size).replace(".", r"\.")
    if operation == "save":  # nothing copied yet: it waits for the lock
        assert re.match(rf"\rsaving: 0 B of {expected}, 1\.\d s", drawn), drawn
    else:
        assert re.match(rf"\rrestoring {expected}: 1\.\d s", drawn), drawn
    assert drawn.endswith(" \r")
    assert len(lines) == 1
    assert lines[0].startswith("saved " if operation == "save" else "restored "), lines


@pytest.mark.mysql
def test_a_mysql_save_held_up_by_a_table_lock_shows_the_source_size(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_mysql_url: str
) -> None:
    """The save waits on ``LOCK TABLES users WRITE`` for 1.3 s; the line measures the live
    database's files and the copy's on connections of its own meanwhile (issue 24: the
    files' true sizes, not statistics that lag a fresh copy)."""
    database = make_url(fresh_mysql_url).database
    with mysql_connection(fresh_mysql_url, database=database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(200))")
        cur.executemany("INSERT INTO users VALUES (%s, %s)", [(i, "x" * 150) for i in range(500)])
    terminal = on_stderr(monkeypatch, Terminal())
    lines: list[str] = []
    snaps = backend_for_url(fresh_mysql_url, store_dir=tmp_path / "snaps", progress=lines.append)
    with mysql_connection(fresh_mysql_url, database=database) as other, other.cursor() as cur:
        cur.execute("LOCK TABLES users WRITE")
        release = threading.Timer(1.3, cur.execute, args=("UNLOCK TABLES",))
        release.start()
        try:
            snaps.save("a")
        finally:
            release.join()
    drawn = terminal.getvalue()
    found = re.match(r"\rsaving: (\d+\.\d) kB of (\d+\.\d) kB, 1\.\d s", drawn)
    assert found, drawn
    # Nothing copied yet: the copy holds only its empty marker table; users' file is larger.
    assert float(found[1]) < float(found[2]), drawn
    assert drawn.endswith(" \r")
    assert len(lines) == 1 and lines[0].startswith("saved "), lines


@pytest.fixture
def wal_db_at_main_head(alembic_template: Path, tmp_path: Path) -> Project:
    """The seed Alembic project on main, its SQLite database at BASE in WAL mode (where a
    writer holds back a save but not the readers before it)."""
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic")
    p.ok("sync")
    with sqlite3.connect(p.db_path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    return p


def save_on_a_terminal(p: Project, *args: str, hold: float | None) -> tuple[str, str]:
    """``branchmig ARGS`` with stderr on a pseudo-terminal, while this process holds a write
    transaction on the database: until the live line shows, or for ``hold`` seconds. What
    the terminal and stdout received."""
    writer = sqlite3.connect(p.db_path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    main_side, terminal_side = os.openpty()
    try:
        proc = subprocess.Popen(
            [BRANCHMIG, *args],
            cwd=p.root,
            env=p.environ(),
            stdout=subprocess.PIPE,
            stderr=terminal_side,
            text=True,
        )
        os.close(terminal_side)
        received = b""
        release_at = time.monotonic() + (hold if hold is not None else 30.0)
        while True:
            ready, _, _ = select.select([main_side], [], [], 0.05)
            chunk = b""
            if ready:
                with contextlib.suppress(OSError):  # EIO: the process closed its side
                    chunk = os.read(main_side, 4096)
                received += chunk
            if writer.in_transaction and (
                (hold is None and b"\r" in received) or time.monotonic() > release_at
            ):
                writer.execute("ROLLBACK")
            if time.monotonic() > release_at + 30:
                proc.kill()  # stuck: fail below rather than hang the suite
            if not chunk and proc.poll() is not None:
                break
        stdout, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, received
    finally:
        writer.close()
        os.close(main_side)
    return received.decode(), stdout


def test_branchmig_snapshot_save_on_a_terminal_shows_the_line_and_not_with_q(
    wal_db_at_main_head: Project,
) -> None:
    p = wal_db_at_main_head
    drawn, said = save_on_a_terminal(p, "snapshot", "save", "held", hold=None)
    assert re.match(r"\rsaving: \d+ B of \d+\.\d kB, 1\.\d s\r +\rsaved ", drawn), drawn
    assert said.startswith("Saved snapshot 'held'")
    drawn, said = save_on_a_terminal(p, "-q", "snapshot", "save", "quiet", hold=2.0)
    assert drawn == ""
    assert said.startswith("Saved snapshot 'quiet'")
