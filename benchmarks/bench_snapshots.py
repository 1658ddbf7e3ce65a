"""How fast branchmig's snapshots are next to the alternatives, on real databases.

PostgreSQL: save by CREATE DATABASE … TEMPLATE (each STRATEGY too, which is how the
FILE_COPY threshold in branchmig/snapshots/postgresql.py was chosen) and restore by rename,
against pg_dump -Fc + pg_restore and against `cp` of as many bytes. SQLite: save (a file
copy under a lock that keeps writers out) and restore (the backup API into the live file)
against `cp` of the same file. MariaDB: save (tables copied over several connections
under one read lock) and restore (one RENAME TABLE swap), against `mariadb-dump |
mariadb` into a new database and against the floor, copying the largest table alone the
way a save copies each. Everything the benchmark creates is dropped at the end.

    python benchmarks/bench_snapshots.py [--pg-url URL] [--sizes 10MB,1GB] [--quick]
        [--backends postgresql,sqlite,mysql] [--mysql-url URL] [--mysql-sizes 20MB,1GB]
        [--mysql-prefix bm_bench_my_]
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
import pymysql
from psycopg import sql
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from branchmig.snapshots import backend_for_url, mysql_copy  # noqa: E402
from branchmig.snapshots.base import format_size  # noqa: E402
from branchmig.snapshots.mysql import MySQLBackend  # noqa: E402
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


# An app's tables, by their share of the database and the bytes a row takes on disk: the
# largest holds ~40% of it, so the floor (it alone) is well above half of a serial copy.
MYSQL_TABLES = [
    (
        "users",
        0.02,
        175,
        "CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(120) NOT NULL UNIQUE, "
        "name VARCHAR(80), created DATETIME NOT NULL, KEY (created))",
        "SELECT seq, CONCAT('user', seq, '@example.org'), CONCAT('User ', seq), "
        "'2024-01-01' + INTERVAL seq MINUTE",
    ),
    (
        "posts",
        0.34,
        1420,
        "CREATE TABLE posts (id INT PRIMARY KEY, user_id INT NOT NULL, title VARCHAR(200), "
        "body TEXT, created DATETIME NOT NULL, KEY (created), KEY (user_id))",
        "SELECT seq, 1 + seq % 1000, CONCAT('Post ', seq), REPEAT(MD5(seq), 36), "
        "'2024-01-01' + INTERVAL seq SECOND",
    ),
    (
        "comments",
        0.22,
        373,
        "CREATE TABLE comments (id INT PRIMARY KEY, post_id INT NOT NULL, "
        "user_id INT NOT NULL, body TEXT, KEY (post_id), KEY (user_id))",
        "SELECT seq, 1 + seq % 1000, 1 + seq % 1000, REPEAT(MD5(seq * 7), 8)",
    ),
    (
        "events",
        0.42,
        1000,
        "CREATE TABLE events (id BIGINT PRIMARY KEY, kind VARCHAR(40) NOT NULL, "
        "payload VARCHAR(2000), at DATETIME NOT NULL, KEY (kind, at))",
        "SELECT seq, ELT(1 + seq % 5, 'login', 'logout', 'view', 'edit', 'delete'), "
        "REPEAT(MD5(seq * 3), 26), '2024-01-01' + INTERVAL seq SECOND",
    ),
]


class MariaDB:
    """The server of ``url``: statements on one connection, and the command-line clients'
    options to reach it."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.args: dict[str, Any] = {
            "host": parsed.host or "127.0.0.1",
            "port": parsed.port or 3306,
            "user": parsed.username or "root",
            "password": str(parsed.password or ""),
        }
        self.url = url
        self.conn = pymysql.connect(**self.args, autocommit=True)
        self.cli = [f"--host={self.args['host']}", f"--port={self.args['port']}"]
        self.cli.append(f"--user={self.args['user']}")
        self.env = dict(os.environ, MYSQL_PWD=self.args["password"])

    def run(self, *statements: str) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
            return list(cur.fetchall())

    def database_url(self, name: str) -> str:
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def drop(self, name: str) -> None:
        self.run(f"DROP DATABASE IF EXISTS `{name}`")


def build_mysql_database(server: MariaDB, name: str, size: int) -> None:
    """``name`` holding ~``size`` bytes, built once and kept while this process runs."""
    server.drop(name)
    server.run(f"CREATE DATABASE `{name}`", f"USE `{name}`")
    for table, share, row_bytes, create, select in MYSQL_TABLES:
        server.run(create)
        rows = max(1, int(size * share / row_bytes))
        for first in range(1, rows + 1, 200_000):  # the redo log takes it in pieces
            last = min(rows, first + 199_999)
            server.run(f"INSERT INTO {table} {select} FROM seq_{first}_to_{last}")
    server.run(f"ANALYZE TABLE {', '.join(t[0] for t in MYSQL_TABLES)}", "USE mysql")


def mysql_sizes(server: MariaDB, name: str) -> tuple[int, str, int]:
    """The database's bytes and its largest table's name and bytes (fresh statistics)."""
    rows = server.run(
        "SELECT TABLE_NAME, DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA = '{name}' ORDER BY 2 DESC"
    )
    return sum(int(r[1]) for r in rows), rows[0][0], int(rows[0][1])


def mysql_floor(server: MariaDB, live: str, table: str) -> float:
    """The time to copy ``table`` alone as a save's worker copies it: what no parallel
    copy of the database can beat."""
    scratch = f"{live}_floor"
    server.drop(scratch)
    server.run(
        f"CREATE DATABASE `{scratch}`",
        f"CREATE TABLE `{scratch}`.`{table}` LIKE `{live}`.`{table}`",
    )
    columns = [r[0] for r in server.run(f"SHOW COLUMNS FROM `{live}`.`{table}`")]
    connect = functools.partial(pymysql.connect, **server.args, autocommit=True)
    job = mysql_copy.Job(table, tuple(columns))
    try:
        return timed(lambda: mysql_copy.copy_tables(connect, live, scratch, [job], workers=1))
    finally:
        server.drop(scratch)


def mysql_dump_pipe(server: MariaDB, live: str) -> float:
    """``CREATE DATABASE`` + ``mariadb-dump --single-transaction | mariadb``: a snapshot
    by dump, as a second database."""
    copy = f"{live}_dump"
    server.drop(copy)

    def pipe() -> None:
        server.run(f"CREATE DATABASE `{copy}`")
        dumping = subprocess.Popen(
            ["mariadb-dump", *server.cli, "--single-transaction", live],
            env=server.env, stdout=subprocess.PIPE,
        )  # fmt: skip
        subprocess.run(
            ["mariadb", *server.cli, copy], env=server.env, stdin=dumping.stdout, check=True
        )
        assert dumping.stdout is not None
        dumping.stdout.close()
        if dumping.wait() != 0:
            raise SystemExit("mariadb-dump failed")

    try:
        return timed(pipe)
    finally:
        server.drop(copy)


def bench_mysql(
    server: MariaDB, live: str, size: int, runs: int, scratch: Path
) -> list[tuple[str, str, str]]:
    print(f"... MariaDB {format_size(size)}: building {live}", file=sys.stderr)
    build_mysql_database(server, live, size)
    nbytes, largest, largest_bytes = mysql_sizes(server, live)
    label = f"MariaDB {format_size(nbytes)}"
    snaps = backend_for_url(server.database_url(live), store_dir=scratch)
    assert isinstance(snaps, MySQLBackend)
    saves, restores, floors, pipes = [], [], [], []
    try:
        for i in range(runs):  # each side once a round: the machine's drift hits all alike
            saves.append(timed(functools.partial(snaps.save, f"bench{i}")))
            restores.append(
                timed(functools.partial(snaps.restore, f"bench{i}", keep_current_as=f"kept{i}"))
            )
            snaps.drop(f"kept{i}")
            floors.append(mysql_floor(server, live, largest))
            pipes.append(mysql_dump_pipe(server, live))
    finally:
        for snap in snaps.stored():
            snaps.drop(snap.key)
    save, restore, floor, piped = min(saves), min(restores), min(floors), min(pipes)
    verdict = "ok" if piped / save >= 4 else "MISSED"
    return [
        (label, "save: branchmig (parallel INSERT … SELECT)", f"{save:.3f} s"),
        (label, "restore: branchmig (RENAME TABLE swap)", f"{restore:.3f} s"),
        (label, "CREATE DATABASE + mariadb-dump | mariadb", f"{piped:.3f} s"),
        (
            label,
            f"floor: copy of the largest table alone ({largest}, {format_size(largest_bytes)})",
            f"{floor:.3f} s",
        ),  # fmt: skip
        (
            label,
            "save vs mariadb-dump | mariadb",
            f"{piped / save:.1f}x faster  [target >= 4x: {verdict}]",
        ),  # fmt: skip
        (label, "save vs floor", f"{save / floor:.2f}x the floor"),
        (
            label,
            "save+restore vs mariadb-dump | mariadb",
            f"{piped / (save + restore):.1f}x faster",
        ),
    ]


def run_mysql(args: argparse.Namespace, scratch: Path) -> list[tuple[str, str, str]]:
    print(f"MariaDB server: {mask_url(args.mysql_url)}", file=sys.stderr)
    server = MariaDB(args.mysql_url)
    sizes = [2 * 10**7] if args.quick else [parse_size(s) for s in args.mysql_sizes.split(",")]
    rows: list[tuple[str, str, str]] = []
    try:
        for size in sizes:
            live = f"{args.mysql_prefix}{size // 10**6}mb"
            try:
                runs = 1 if args.quick or size >= 10**9 else args.runs
                rows += bench_mysql(server, live, size, runs, scratch)
            finally:
                server.drop(live)
    finally:
        server.conn.close()
    return rows


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
    parser.add_argument(
        "--backends", default="postgresql,sqlite,mysql", help="which databases to time"
    )
    parser.add_argument(
        "--mysql-url",
        default=os.environ.get(
            "BRANCHMIG_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/mysql"
        ),
        help="a MariaDB server where the user may create databases",
    )
    parser.add_argument("--mysql-sizes", default="20MB,1GB", help="comma-separated")
    parser.add_argument(
        "--mysql-prefix", default="bm_bench_my_", help="the MariaDB databases' name prefix"
    )
    args = parser.parse_args(argv)
    backends = set(args.backends.split(","))
    sizes = [10**7] if args.quick else [parse_size(s) for s in args.sizes.split(",")]
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bm-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        for size in sizes if backends & {"postgresql", "sqlite"} else []:
            runs = 1 if args.quick or size >= 10**9 else args.runs
            print(f"... {format_size(size)}", file=sys.stderr)
            if "postgresql" in backends:
                print(f"PostgreSQL server: {mask_url(args.pg_url)}", file=sys.stderr)
                rows += bench_postgres(args.pg_url, size, runs, scratch)
            if "sqlite" in backends:
                rows += bench_sqlite(size, runs, scratch)
        if "mysql" in backends:
            rows += run_mysql(args, scratch)
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    print(f"{'database':<{widths[0]}}  {'operation':<{widths[1]}}  result")
    for database, operation, result in rows:
        print(f"{database:<{widths[0]}}  {operation:<{widths[1]}}  {result}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
