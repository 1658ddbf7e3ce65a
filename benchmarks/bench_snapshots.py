"""How fast branchmig's snapshots are next to the alternatives, on real databases.

PostgreSQL: save by CREATE DATABASE … TEMPLATE (each STRATEGY too, which is how the
FILE_COPY threshold in branchmig/snapshots/postgresql.py was chosen) and restore by rename,
against pg_dump -Fc + pg_restore and against `cp` of as many bytes. SQLite: save (a file
copy under a lock that keeps writers out) and restore (the backup API into the live file)
against `cp` of the same file. Everything the benchmark creates is dropped at the end.

    python benchmarks/bench_snapshots.py [--pg-url URL] [--sizes 10MB,1GB] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from branchmig.snapshots import backend_for_url  # noqa: E402
from branchmig.snapshots.base import format_size  # noqa: E402
from branchmig.urls import mask_url  # noqa: E402

UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9}
ROW_BYTES = 1000  # a row of the filler table takes about this much on disk


def parse_size(text: str) -> int:
    text = text.strip().upper()
    for unit, factor in UNITS.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def timed(action: Callable[[], object]) -> float:
    # Written-back pages of the step before (a 1 GB restore leaves many) would otherwise
    # slow whichever operation comes next, ours or cp.
    os.sync()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def best_of(runs: int, action: Callable[[], object], reset: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        times.append(timed(action))
        reset()
    return min(times)


@contextmanager
def admin(url: str) -> Iterator[psycopg.Connection[Any]]:
    parsed = make_url(url)
    conn = psycopg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        dbname=parsed.database,
        autocommit=True,
    )
    try:
        yield conn
    finally:
        conn.close()


def ident(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def drop_db(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident(name)))


def cp_time(path: Path, scratch: Path) -> float:
    target = scratch / "cp-target"
    spent = timed(lambda: subprocess.run(["cp", str(path), str(target)], check=True))
    target.unlink()
    return spent


def file_of_size(path: Path, size: int) -> Path:
    chunk = os.urandom(1 << 20)
    with path.open("wb") as out:
        written = 0
        while written < size:
            out.write(chunk[: min(len(chunk), size - written)])
            written += len(chunk)
    return path


def bench_postgres(url: str, size: int, runs: int, scratch: Path) -> list[tuple[str, str, str]]:
    live = f"bm_bench_{uuid.uuid4().hex[:8]}"
    live_url = make_url(url).set(database=live).render_as_string(hide_password=False)
    env = dict(os.environ)
    parsed = make_url(url)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    conninfo = [f"--host={parsed.host}", f"--port={parsed.port or 5432}"]
    if parsed.username:
        conninfo.append(f"--username={parsed.username}")
    rows: list[tuple[str, str, str]] = []
    with admin(url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(ident(live)))
        try:
            with admin(live_url) as live_conn:
                live_conn.execute("CREATE TABLE filler (id bigint PRIMARY KEY, payload text)")
                live_conn.execute(
                    "INSERT INTO filler SELECT g, repeat(md5(g::text), 29) "
                    "FROM generate_series(1, %s) g",
                    (max(1, size // ROW_BYTES),),
                )
                live_conn.execute("VACUUM ANALYZE filler")
            conn.execute("CHECKPOINT")
            actual = conn.execute("SELECT pg_database_size(%s)", (live,)).fetchone()
            nbytes = int(actual[0]) if actual else size
            label = f"PostgreSQL {format_size(nbytes)}"

            def clone(strategy: str) -> Callable[[], object]:
                return lambda: conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY {}").format(
                        ident(f"{live}_s"), ident(live), sql.SQL(strategy)
                    )
                )

            reset = lambda: drop_db(conn, f"{live}_s")  # noqa: E731
            clone_of_template0 = lambda: conn.execute(  # noqa: E731
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(ident(f"{live}_e"))
            )
            wal_log = best_of(runs, clone("WAL_LOG"), reset)
            file_copy = best_of(runs, clone("FILE_COPY"), reset)

            with tempfile.TemporaryDirectory(dir=scratch) as store:
                snaps = backend_for_url(live_url, store_dir=Path(store))
                saves, restores, floors = [], [], []
                for i in range(runs):
                    # As a switch does: leaving a branch saves a new snapshot; coming back
                    # makes it live again and keeps what it replaces as the other's.
                    saved, kept = f"bench{i}", f"kept{i}"
                    saves.append(timed(functools.partial(snaps.save, saved)))
                    # What any database copy costs here, whatever it holds: an empty one.
                    floors.append(timed(clone_of_template0))
                    drop_db(conn, f"{live}_e")
                    restores.append(
                        timed(functools.partial(snaps.restore, saved, keep_current_as=kept))
                    )
                save, restore, floor = min(saves), min(restores), min(floors)
                for i in range(runs):
                    snaps.drop(f"kept{i}")

            dump_file = scratch / "bench.dump"
            dump = timed(
                lambda: subprocess.run(
                    ["pg_dump", "-Fc", f"--file={dump_file}", *conninfo, live],
                    env=env,
                    check=True,
                )
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(ident(f"{live}_r")))
            pg_restore = timed(
                lambda: subprocess.run(
                    ["pg_restore", "--no-owner", f"--dbname={live}_r", *conninfo, str(dump_file)],
                    env=env,
                    check=True,
                )
            )
            drop_db(conn, f"{live}_r")
            dump_file.unlink()

            def copy_by_dump() -> None:
                # A snapshot by dump, as a second database: createdb, then the pipe.
                conn.execute(sql.SQL("CREATE DATABASE {}").format(ident(f"{live}_r")))
                dumping = subprocess.Popen(
                    ["pg_dump", "-Fc", *conninfo, live], env=env, stdout=subprocess.PIPE
                )
                subprocess.run(
                    ["pg_restore", "--no-owner", f"--dbname={live}_r", *conninfo],
                    env=env, stdin=dumping.stdout, check=True,
                )  # fmt: skip
                assert dumping.stdout is not None
                dumping.stdout.close()
                if dumping.wait() != 0:
                    raise SystemExit("pg_dump failed")

            piped = timed(copy_by_dump)
            drop_db(conn, f"{live}_r")
            copy = cp_time(file_of_size(scratch / "bytes", nbytes), scratch)
            (scratch / "bytes").unlink()
        finally:
            drop_db(conn, live)
            for suffix in ("_s", "_r", "_e"):
                drop_db(conn, f"{live}{suffix}")
            for i in range(runs):
                for key in (f"bench{i}", f"kept{i}"):
                    drop_db(conn, f"{live}__bm_{key}")

    dump_restore = dump + pg_restore
    rows += [
        (label, "save: TEMPLATE, STRATEGY WAL_LOG", f"{wal_log:.3f} s"),
        (label, "save: TEMPLATE, STRATEGY FILE_COPY", f"{file_copy:.3f} s"),
        (label, "save: branchmig (strategy by size)", f"{save:.3f} s"),
        (
            label,
            "restore: branchmig (rename swap)",
            f"{restore:.3f} s  [target < 1 s: {'ok' if restore < 1 else 'MISSED'}]",
        ),  # fmt: skip
        (label, "pg_dump -Fc", f"{dump:.3f} s"),
        (label, "pg_restore", f"{pg_restore:.3f} s"),
        (label, "createdb + pg_dump -Fc | pg_restore", f"{piped:.3f} s"),
        (label, "cp of as many bytes", f"{copy:.3f} s"),
        (label, "CREATE DATABASE of an empty database (floor)", f"{floor:.3f} s"),
        (
            label,
            "save vs pg_dump",
            f"{dump / save:.1f}x faster  [target >= 5x: {'ok' if dump / save >= 5 else 'MISSED'}]",
        ),  # fmt: skip
        (
            label,
            "save vs createdb + pg_dump | pg_restore",
            f"{piped / save:.1f}x faster  [target >= 5x: {'ok' if piped / save >= 5 else 'MISS'}]",
        ),  # fmt: skip
        (label, "save+restore vs dump+restore", f"{dump_restore / (save + restore):.1f}x faster"),
        (label, "save vs cp", f"{save / copy:.2f}x the time of cp"),
        (
            label,
            "pg_dump vs floor: the most any TEMPLATE copy can gain",
            f"{dump / floor:.1f}x (save is {save / floor:.2f}x the floor)",
        ),  # fmt: skip
    ]
    return rows


def bench_sqlite(size: int, runs: int, scratch: Path) -> list[tuple[str, str, str]]:
    live = scratch / "bench.db"
    conn = sqlite3.connect(live)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, payload BLOB)")
    blob = os.urandom(ROW_BYTES)
    conn.executemany(
        "INSERT INTO filler (payload) VALUES (?)", ((blob,) for _ in range(size // ROW_BYTES))
    )
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    nbytes = live.stat().st_size
    label = f"SQLite {format_size(nbytes)}"
    with tempfile.TemporaryDirectory(dir=scratch) as store:
        snaps = backend_for_url(f"sqlite:///{live}", store_dir=Path(store))
        saves, copies, restores = [], [], []
        for _ in range(runs):  # cp beside each save: the disk's mood weighs on both alike
            saves.append(timed(lambda: snaps.save("bench")))
            copies.append(cp_time(live, scratch))
            restores.append(timed(lambda: snaps.restore("bench")))
    save, copy, restore = min(saves), min(copies), min(restores)
    live.unlink()
    return [
        (label, "save: file copy under a lock", f"{save:.3f} s"),
        (label, "restore: backup API into the live file", f"{restore:.3f} s"),
        (label, "cp of the file", f"{copy:.3f} s"),
        (
            label,
            "save vs cp",
            f"{save / copy:.2f}x the time of cp  [target <= 2x: "
            f"{'ok' if save / copy <= 2 else 'MISSED'}]",
        ),  # fmt: skip
        (label, "restore vs cp", f"{restore / copy:.2f}x the time of cp"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "BRANCHMIG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL server where the role may create databases",
    )
    parser.add_argument("--sizes", default="10MB,1GB", help="comma-separated, e.g. 10MB,1GB")
    parser.add_argument("--quick", action="store_true", help="10 MB only, one run each")
    parser.add_argument("--runs", type=int, default=3, help="best of N for the fast operations")
    args = parser.parse_args(argv)
    sizes = [10**7] if args.quick else [parse_size(s) for s in args.sizes.split(",")]
    print(f"PostgreSQL server: {mask_url(args.pg_url)}", file=sys.stderr)
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bm-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        for size in sizes:
            runs = 1 if args.quick or size >= 10**9 else args.runs
            print(f"... {format_size(size)}", file=sys.stderr)
            rows += bench_postgres(args.pg_url, size, runs, scratch)
            rows += bench_sqlite(size, runs, scratch)
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    print(f"{'database':<{widths[0]}}  {'operation':<{widths[1]}}  result")
    for database, operation, result in rows:
        print(f"{database:<{widths[0]}}  {operation:<{widths[1]}}  {result}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
