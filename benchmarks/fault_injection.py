"""Fault injection: a move from feature1 to feature2 SIGKILLed at a random instant, then
recovered by ``branchmig status`` and ``branchmig sync``; no branch's data may be lost.

For each backend (SQLite, PostgreSQL, MariaDB/MySQL) and path (``git checkout feature2``
through the installed hook; ``branchmig switch feature2``; or ``return``, a checkout of
feature2 through the hook after a round trip, which only restores feature2's waiting
snapshot; SQLite only), a batch of trials on the seed
project of tests/e2e_projects.py: main has BASE (``users``), feature1 adds F1
(``users.email``), feature2 adds F2 (``posts``); the database is at feature1 holding two
users with emails, the hooks installed. feature1's downgrade and feature2's upgrade sleep
(``--sleep`` seconds before and after their DDL) so that kills land at varied points.

A batch first runs ``--calibrate`` unkilled moves (control trials, checked like the
others): their median duration D is the kill window, the first one's database is the
"post" state. Each trial then starts the move on a fresh copy of the project (and a fresh
database), SIGKILLs it (path=switch: the ``branchmig switch`` process; path=hook: the
hook's ``python -m branchmig.hookrun``, git itself finishing the checkout) at a uniform
instant in [0, D], runs ``branchmig status`` (recovery) and ``branchmig sync``, and checks:

- the database is exactly the pre-move state (schema, rows, alembic_version) with feature1
  checked out, or exactly the post-move state with feature2 checked out;
- a round trip through both branches (the same path: hook checkouts, or switches) brings
  back exactly feature1's database (the two users with their emails) and feature2's;
- no ``Traceback`` in any output, every command after the kill exits 0, the journal is
  gone, ``status --json`` has ``pending == []`` and ``unknown == []``.

Snapshot copies left behind that no snapshot record names (orphans) are counted apart:
they are a leak, not a lost branch. Exit status 1 when any trial (control trials included)
is BROKEN.

Path ``restore`` (all three databases) kills ``branchmig snapshot restore point`` instead:
each trial saves the database at feature1 as snapshot ``point`` (its rows: "after"), adds
two users ("before"), restores ``point`` with ``--keep``, ``--consume`` or neither in turn
(trial index modulo 3), kills it as above, then runs the next command, ``snapshot list
--json`` or ``status`` in turn (every pairing once in six trials), and checks: the journal
is gone; the database is exactly "before" (pre) or "after" (post); the index equals the
copies (none listed without its copy, no orphan: here a finding); unfinished, ``point`` is
listed and restoring it gives "after"; finished, ``point`` is listed iff it was to be kept
(and then gives "after") and a ``replaced-…`` snapshot is; every ``replaced-…`` snapshot
listed gives "before"; no ``Traceback``, ``status --json`` with nothing pending.

    python benchmarks/fault_injection.py [--trials 50] [--backends sqlite,postgresql,mysql]
        [--paths hook,switch,return,restore] [--seed N] [--sleep 0.1] [--calibrate 3]
        [--kill-group] [--signal KILL|INT]

Servers come from BRANCHMIG_TEST_POSTGRES_URL / BRANCHMIG_TEST_MYSQL_URL (defaults:
postgres@127.0.0.1:5432, root@127.0.0.1:3306). On PostgreSQL the project connects as a
role made for the run (CREATEDB, owner of the live database), so whatever branchmig leaves
on the server is found by its owner; everything made is dropped at the end. Commands run
with their bytecode cached under a temporary PYTHONPYCACHEPREFIX (as an installed copy
would), which writes nothing into the source tree.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))
# Every move a new interpreter, the hook's in git's process group: what is killed is the
# process that migrates (the tests' warm process would run it outside the group).
os.environ["BRANCHMIG_TEST_COLD"] = "1"

from db_servers import (  # noqa: E402
    drop_mysql_database_and_snapshots,
    drop_postgres_database_and_snapshots,
    mysql_connection,
    postgres_connection,
    url_with_database,
)
from e2e_projects import (  # noqa: E402
    BRANCHMIG,
    EMAILS,
    F1,
    F1_SCRIPT,
    F2,
    F2_SCRIPT,
    Project,
    build_alembic_template,
    make_seed_project,
)
from sqlalchemy.engine import make_url  # noqa: E402

COMMAND_TIMEOUT = 120.0
# The paths whose move is a checkout through the hook: "hook" migrates feature1 to feature2;
# "return" comes back to feature2 after a round trip, so the move only restores its waiting
# snapshot (on SQLite without Alembic: the remembered database, see branchmig/remembered.py).
HOOK_PATHS = ("hook", "return")
PATHS = ("hook", "switch", "return", "restore")
# path=restore: ``branchmig snapshot restore point`` of a snapshot saved by name, with each
# of these options in turn, then each of these next commands in turn (every pairing once in
# six trials; the three controls, numbered -1 to -3, take the three options).
RESTORE_NAME = "point"
RESTORE_OPTIONS = ("--keep", "--consume", "")
RESTORE_NEXT = (("snapshot", "list", "--json"), ("status",))
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/mysql"


# -- the seed project, slowed down -----------------------------------------------------------


def _with_time(text: str) -> str:
    return text.replace("import sqlalchemy as sa\n", "import time\n\nimport sqlalchemy as sa\n")


def slow_f1(sleep: float) -> str:
    """F1 with a downgrade that sleeps before and after dropping the column."""
    body = '    with op.batch_alter_table("users") as batch:\n        batch.drop_column("email")'
    assert body in F1_SCRIPT
    return _with_time(
        F1_SCRIPT.replace(body, f"    time.sleep({sleep!r})\n{body}\n    time.sleep({sleep!r})")
    )


def slow_f2(sleep: float) -> str:
    """F2 with an upgrade that sleeps before and after creating ``posts``."""
    body = (
        '    op.create_table("posts", sa.Column("id", sa.Integer, primary_key=True),\n'
        '                    sa.Column("title", sa.String(100)))'
    )
    assert body in F2_SCRIPT
    return _with_time(
        F2_SCRIPT.replace(body, f"    time.sleep({sleep!r})\n{body}\n    time.sleep({sleep!r})")
    )


def check_ok(proc: subprocess.CompletedProcess[str], what: str) -> None:
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")


# -- backends ---------------------------------------------------------------------------------


class Backend:
    """One database server (or SQLite) for a batch: the live database the project uses, a
    pristine copy of it at feature1 (the seed), state dumps, clean-up."""

    name = ""

    def url(self) -> str | None:
        """The URL for alembic.ini (None: the seed project's ``sqlite:///app.db``)."""
        return None

    def before_seed(self) -> None:
        """Make the (empty) live database the seed project migrates."""

    def keep_seed(self, p: Project) -> None:
        """The live database is at feature1 with the users: keep a pristine copy."""

    def reset_live(self) -> None:
        """Drop the live database, its snapshots and any leftover; make it again from
        the seed copy."""

    def state(self, p: Project) -> Any:
        raise NotImplementedError

    def summary(self, p: Project) -> dict[str, Any]:
        raise NotImplementedError

    def insert_users(self, p: Project) -> None:
        raise NotImplementedError

    def orphans(self, p: Project, keys: list[str]) -> list[str]:
        """Snapshot copies on disk or on the server that no snapshot record names."""
        return []

    def finish(self) -> None:
        """Drop everything the batch made."""


class SQLiteBackend(Backend):
    name = "sqlite"

    def state(self, p: Project) -> Any:
        if not p.db_path.exists():
            return {"error": "app.db does not exist"}
        conn = sqlite3.connect(p.db_path)
        try:
            return list(conn.iterdump())
        finally:
            conn.close()

    def summary(self, p: Project) -> dict[str, Any]:
        if not p.db_path.exists():
            return {"error": "app.db does not exist"}
        out: dict[str, Any] = {}
        conn = sqlite3.connect(p.db_path)
        try:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                )
            ]
            out["tables"] = tables
            if "alembic_version" in tables:
                out["version"] = sorted(
                    r[0] for r in conn.execute("SELECT version_num FROM alembic_version")
                )
            if "users" in tables:
                out["users"] = [tuple(r) for r in conn.execute("SELECT * FROM users ORDER BY id")]
        finally:
            conn.close()
        return out

    def insert_users(self, p: Project) -> None:
        with sqlite3.connect(p.db_path) as conn:
            conn.executemany("INSERT INTO users (name, email) VALUES (?, ?)", EMAILS)
        conn.close()

    def orphans(self, p: Project, keys: list[str]) -> list[str]:
        folder = p.state_dir / "snapshots"
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.iterdir()):
            name = path.name
            if any(name.endswith(f"__{key}.db") for key in keys):
                continue
            found.append(name)
        return found


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self, server_url: str) -> None:
        self.server = server_url
        tag = uuid.uuid4().hex[:10]
        self.role = f"bm_fi_{tag}"
        self.live = f"bm_fi_{tag}"
        self.seed = f"bm_fi_{tag}_seed"
        with postgres_connection(self.server) as conn:
            conn.execute(f'CREATE ROLE "{self.role}" LOGIN CREATEDB')

    def url(self) -> str:
        return (
            make_url(url_with_database(self.server, self.live))
            .set(username=self.role, password=None)
            .render_as_string(hide_password=False)
        )

    def _admin_live(self) -> str:
        return url_with_database(self.server, self.live)

    def before_seed(self) -> None:
        with postgres_connection(self.server) as conn:
            conn.execute(f'CREATE DATABASE "{self.live}" OWNER "{self.role}"')

    def keep_seed(self, p: Project) -> None:
        with postgres_connection(self.server) as conn:
            conn.execute(
                f'CREATE DATABASE "{self.seed}" TEMPLATE "{self.live}" OWNER "{self.role}"'
            )

    def _owned(self, conn: Any) -> list[str]:
        return [
            r[0]
            for r in conn.execute(
                "SELECT datname FROM pg_database WHERE datdba = "
                "(SELECT oid FROM pg_roles WHERE rolname = %s) ORDER BY datname",
                (self.role,),
            ).fetchall()
        ]

    def _drop_all_but_seed(self) -> None:
        drop_postgres_database_and_snapshots(self.server, self.live)
        with postgres_connection(self.server) as conn:
            for name in self._owned(conn):
                if name != self.seed:
                    conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                        (name,),
                    )
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def reset_live(self) -> None:
        self._drop_all_but_seed()
        with postgres_connection(self.server) as conn:
            conn.execute(
                f'CREATE DATABASE "{self.live}" TEMPLATE "{self.seed}" OWNER "{self.role}"'
            )

    def state(self, p: Project) -> Any:
        try:
            with postgres_connection(self._admin_live()) as conn:
                columns = conn.execute(
                    "SELECT table_name, column_name, data_type, is_nullable, column_default "
                    "FROM information_schema.columns WHERE table_schema = 'public' "
                    "ORDER BY table_name, ordinal_position"
                ).fetchall()
                constraints = conn.execute(
                    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                    "FROM pg_constraint WHERE connamespace = 'public'::regnamespace "
                    "ORDER BY 1, 2"
                ).fetchall()
                indexes = conn.execute(
                    "SELECT tablename, indexname, indexdef FROM pg_indexes "
                    "WHERE schemaname = 'public' ORDER BY 1, 2"
                ).fetchall()
                sequences = conn.execute(
                    "SELECT sequencename, last_value FROM pg_sequences "
                    "WHERE schemaname = 'public' ORDER BY 1"
                ).fetchall()
                tables = sorted({t for t, *_ in columns})
                rows = {
                    t: conn.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in tables
                }
        except Exception as err:  # noqa: BLE001 - a missing database is a finding
            return {"error": f"{type(err).__name__}: {err}".strip()}
        return {
            "columns": columns,
            "constraints": constraints,
            "indexes": indexes,
            "sequences": sequences,
            "rows": rows,
        }

    def summary(self, p: Project) -> dict[str, Any]:
        try:
            with postgres_connection(self._admin_live()) as conn:
                tables = [
                    r[0]
                    for r in conn.execute(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
                    ).fetchall()
                ]
                out: dict[str, Any] = {"tables": tables}
                if "alembic_version" in tables:
                    out["version"] = sorted(
                        r[0]
                        for r in conn.execute("SELECT version_num FROM alembic_version").fetchall()
                    )
                if "users" in tables:
                    out["users"] = [
                        tuple(r) for r in conn.execute("SELECT * FROM users ORDER BY id").fetchall()
                    ]
                return out
        except Exception as err:  # noqa: BLE001
            return {"error": f"{type(err).__name__}: {err}".strip()}

    def insert_users(self, p: Project) -> None:
        with postgres_connection(self._admin_live()) as conn:
            for name, email in EMAILS:
                conn.execute("INSERT INTO users (name, email) VALUES (%s, %s)", (name, email))

    def orphans(self, p: Project, keys: list[str]) -> list[str]:
        expected = {self.live, self.seed} | {f"{self.live}__bm_{k}" for k in keys}
        with postgres_connection(self.server) as conn:
            return [n for n in self._owned(conn) if n not in expected]

    def finish(self) -> None:
        self._drop_all_but_seed()
        with postgres_connection(self.server) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.seed}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{self.role}"')


class MySQLBackend(Backend):
    name = "mysql"

    def __init__(self, server_url: str) -> None:
        self.server = server_url
        tag = uuid.uuid4().hex[:10]
        self.live = f"bm_fi_{tag}"
        self.seed = f"bm_fi_{tag}_seed"

    def url(self) -> str:
        return url_with_database(self.server, self.live)

    def _query(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        with mysql_connection(self.server, database=self.live) as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return [tuple(r) for r in cur.fetchall()]

    def before_seed(self) -> None:
        with mysql_connection(self.server) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{self.live}`")

    def _copy(self, source: str, dest: str) -> None:
        with mysql_connection(self.server) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{dest}`")
            cur.execute(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE "
                "TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
                (source,),
            )
            for (table,) in cur.fetchall():
                cur.execute(f"CREATE TABLE `{dest}`.`{table}` LIKE `{source}`.`{table}`")
                cur.execute(f"INSERT INTO `{dest}`.`{table}` SELECT * FROM `{source}`.`{table}`")

    def keep_seed(self, p: Project) -> None:
        self._copy(self.live, self.seed)

    def reset_live(self) -> None:
        drop_mysql_database_and_snapshots(self.server, self.live)
        self._copy(self.seed, self.live)

    def state(self, p: Project) -> Any:
        try:
            tables = self._query(
                "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = %s ORDER BY 1",
                (self.live,),
            )
            columns = self._query(
                "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, "
                "EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                "ORDER BY TABLE_NAME, ORDINAL_POSITION",
                (self.live,),
            )
            indexes = self._query(
                "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME "
                "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
                "ORDER BY 1, 2, 4",
                (self.live,),
            )
            rows = {
                t: self._query(f"SELECT * FROM `{t}` ORDER BY 1")
                for t, kind in tables
                if kind == "BASE TABLE"
            }
        except Exception as err:  # noqa: BLE001
            return {"error": f"{type(err).__name__}: {err}".strip()}
        return {"tables": tables, "columns": columns, "indexes": indexes, "rows": rows}

    def summary(self, p: Project) -> dict[str, Any]:
        try:
            tables = [
                r[0]
                for r in self._query(
                    "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                    "ORDER BY 1",
                    (self.live,),
                )
            ]
            out: dict[str, Any] = {"tables": tables}
            if "alembic_version" in tables:
                out["version"] = sorted(
                    r[0] for r in self._query("SELECT version_num FROM alembic_version")
                )
            if "users" in tables:
                out["users"] = self._query("SELECT * FROM users ORDER BY id")
            return out
        except Exception as err:  # noqa: BLE001
            return {"error": f"{type(err).__name__}: {err}".strip()}

    def insert_users(self, p: Project) -> None:
        self._query(
            "INSERT INTO users (name, email) VALUES (%s, %s), (%s, %s)",
            [v for pair in EMAILS for v in pair],
        )

    def orphans(self, p: Project, keys: list[str]) -> list[str]:
        expected = {f"{self.live}__bm_{k}" for k in keys}
        with mysql_connection(self.server) as conn, conn.cursor() as cur:
            cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
            return sorted(
                r[0]
                for r in cur.fetchall()
                if r[0].startswith(f"{self.live}__bm_") and r[0] not in expected
            )

    def finish(self) -> None:
        drop_mysql_database_and_snapshots(self.server, self.live)
        with mysql_connection(self.server) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.seed}`")


def make_backend(name: str) -> Backend:
    if name == "sqlite":
        return SQLiteBackend()
    if name == "postgresql":
        return PostgresBackend(os.environ.get("BRANCHMIG_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    if name == "mysql":
        return MySQLBackend(os.environ.get("BRANCHMIG_TEST_MYSQL_URL", DEFAULT_MYSQL_URL))
    raise SystemExit(f"unknown backend {name!r} (sqlite, postgresql, mysql)")


# -- processes ---------------------------------------------------------------------------------


def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, command line) for every process, from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: ppid follows the last ")".
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        table[int(entry)] = (ppid, cmdline)
    return table


def find_hookrun(root: int) -> int | None:
    """The pid of ``python -m branchmig.hookrun`` among the descendants of ``root``."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    stack = list(children.get(root, ()))
    while stack:
        pid = stack.pop()
        if "branchmig.hookrun" in table[pid][1]:
            return pid
        stack.extend(children.get(pid, ()))
    return None


@dataclass
class Move:
    seconds: float
    killed: bool
    waited_for_hook: bool  # path=hook: the kill instant came before hookrun existed
    journal_at_kill: dict[str, Any] | None
    stdout: str
    stderr: str
    returncode: int | None


def move_argv(path: str, option: str = "") -> list[str]:
    """The command a trial of ``path`` starts (``option``: the restore's --keep/--consume)."""
    if path in HOOK_PATHS:
        return ["git", "checkout", "feature2"]
    if path == "restore":
        return [BRANCHMIG, "snapshot", "restore", *filter(None, [option]), RESTORE_NAME]
    return [BRANCHMIG, "switch", "feature2"]


def start_move(
    p: Project, argv: list[str], scratch: Path
) -> tuple[subprocess.Popen[bytes], Path, Path]:
    out, err = scratch / "move.out", scratch / "move.err"
    with out.open("wb") as fo, err.open("wb") as fe:
        proc = subprocess.Popen(
            argv,
            cwd=p.root,
            env=p.environ(),
            stdin=subprocess.DEVNULL,
            stdout=fo,
            stderr=fe,
            start_new_session=True,
            # SIGINT handled as in a terminal, even when this script was started in the
            # background of a shell without job control (whose children ignore it).
            preexec_fn=_default_sigint,
        )
    return proc, out, err


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_group(pgid: int, timeout: float = COMMAND_TIMEOUT) -> None:
    """Until no process of group ``pgid`` is left (SIGKILL to it after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            return
        time.sleep(0.01)


def _kill_hookrun(
    proc: subprocess.Popen[bytes], kill_group: bool, sig: signal.Signals
) -> tuple[bool, bool]:
    """``sig`` to the hook's python under ``proc`` (or to the group) the first instant it
    exists: whether it was sent, and whether it had to be waited for."""
    first, waited = True, False
    while proc.poll() is None:
        target = find_hookrun(proc.pid)
        if target is not None:
            try:
                if kill_group:
                    os.killpg(proc.pid, sig)
                else:
                    os.kill(target, sig)
            except ProcessLookupError:
                return False, waited  # it had just ended: counted as finished
            return True, waited
        waited = waited or not first
        first = False
        time.sleep(0.001)
    return False, waited


def run_move(
    p: Project,
    path: str,
    scratch: Path,
    kill_after: float | None,
    kill_group: bool,
    sig: signal.Signals = signal.SIGKILL,
    option: str = "",
) -> Move:
    """Move to feature2 by ``path`` (path=restore: restore the snapshot, with ``option``);
    with ``kill_after``, send ``sig`` (SIGKILL, or SIGINT as a terminal's Ctrl-C does) that
    many seconds after the start (path=hook: the hook's python; the first instant it
    exists, when the kill instant comes before)."""
    start = time.perf_counter()
    proc, out, err = start_move(p, move_argv(path, option), scratch)
    killed = waited = False
    if kill_after is not None:
        deadline = start + kill_after
        while time.perf_counter() < deadline and proc.poll() is None:
            time.sleep(min(0.002, max(0.0, deadline - time.perf_counter())))
        if proc.poll() is None:
            if path not in HOOK_PATHS:
                if kill_group:
                    os.killpg(proc.pid, sig)
                else:
                    os.kill(proc.pid, sig)
                killed = True
            else:
                killed, waited = _kill_hookrun(proc, kill_group, sig)
    journal = None
    if killed:
        try:
            proc.wait(timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if sig != signal.SIGKILL:
            # An interrupted move puts back what it began after git has gone (the hook's
            # Python outlives it): the next command would find it still holding the lock.
            _wait_for_group(proc.pid)
        if p.journal.exists():
            try:
                journal = json.loads(p.journal.read_text())
            except ValueError:
                journal = {"unreadable": p.journal.read_text()[:200]}
    else:
        try:
            proc.wait(timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    seconds = time.perf_counter() - start
    return Move(
        seconds,
        killed,
        waited,
        journal,
        out.read_text(errors="replace"),
        err.read_text(errors="replace"),
        proc.returncode,
    )


# -- a trial -----------------------------------------------------------------------------------


@dataclass
class Trial:
    index: int  # 0-based; negative: control (unkilled) trials
    kill_after: float | None
    kill_class: str = ""  # before | mid | after | finished | control
    outcome: str = ""  # pre | post | BROKEN
    problems: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    move_seconds: float = 0.0
    journal_at_kill: dict[str, Any] | None = None
    last_output: str = ""
    # SIGINT reached the interpreter while it started (site, the console script's
    # imports): its own "KeyboardInterrupt" traceback, before any branchmig code ran.
    at_start: bool = False
    waited_for_hook: bool = False
    variant: str = ""  # path=restore: the option and the next command


def run_command(
    p: Project, problems: list[str], outputs: list[str], label: str, *args: str
) -> subprocess.CompletedProcess[str] | None:
    """``args`` run in the project: its output kept in ``outputs``, a failure or a
    timeout said in ``problems`` (None on a timeout)."""
    try:
        proc: subprocess.CompletedProcess[str] = p.run(*args, timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        problems.append(f"{label}: timed out after {COMMAND_TIMEOUT:.0f} s")
        return None
    outputs.append(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        problems.append(
            f"{label}: exit {proc.returncode}: {_last_lines(proc.stderr or proc.stdout)}"
        )
    return proc


def record_move(trial: Trial, move: Move, outputs: list[str], sig: signal.Signals) -> None:
    """What ``move`` says of the trial; its kill class, but "before" or "after" (killed
    with no journal), which only the database tells: left "" for the caller."""
    trial.move_seconds = move.seconds
    trial.journal_at_kill = move.journal_at_kill
    trial.waited_for_hook = move.waited_for_hook
    trial.last_output = _last_lines(move.stderr, 2)
    if sig == signal.SIGINT and _interrupted_at_start(move.stderr):
        trial.at_start = True  # Python's own start: no code of branchmig's ran
    else:
        outputs.append(move.stdout + move.stderr)
    if trial.kill_after is None:
        trial.kill_class = "control"
        if move.returncode != 0:
            trial.problems.append(
                f"unkilled move: exit {move.returncode}: {_last_lines(move.stderr)}"
            )
    elif not move.killed:
        trial.kill_class = "finished"
    elif move.journal_at_kill is not None:
        trial.kill_class = "mid"


class Batch:
    def __init__(
        self,
        backend: Backend,
        path: str,
        template: Path,
        root: Path,
        sleep: float,
        kill_group: bool,
        sig: signal.Signals = signal.SIGKILL,
    ) -> None:
        self.backend = backend
        self.path = path
        self.root = root
        self.kill_group = kill_group
        self.sig = sig
        self.seed_dir = root / "seed"
        self.post_ref: Any = None
        self.pre_ref: Any = None
        self._build_seed(template, sleep)

    def _build_seed(self, template: Path, sleep: float) -> None:
        b = self.backend
        b.before_seed()
        p = make_seed_project(template, self.seed_dir, kind="alembic", url=b.url())
        p.git("checkout", "-q", "feature1")
        p.write(f"{F1}_email.py", slow_f1(sleep))
        p.commit("feature1: users.email, slow downgrade")
        p.git("checkout", "-q", "feature2")
        p.write(f"{F2}_posts.py", slow_f2(sleep))
        p.commit("feature2: posts, slow upgrade")
        p.git("checkout", "-q", "main")
        check_ok(p.branchmig("sync"), "branchmig sync (seed)")
        # Without a snapshot: main keeps none, so the trials' moves migrate rather than
        # restore (as the tests' seed fixture does).
        check_ok(
            p.branchmig("switch", "feature1", "--no-snapshot"), "branchmig switch feature1 (seed)"
        )
        b.insert_users(p)
        check_ok(p.branchmig("install"), "branchmig install (seed)")
        if self.path == "return":  # a trip there and back: feature2's snapshot waits
            check_ok(p.run("git", "checkout", "feature2"), "git checkout feature2 (seed)")
            check_ok(p.run("git", "checkout", "feature1"), "git checkout feature1 (seed)")
        proc = p.branchmig("status", "--json")
        check_ok(proc, "branchmig status --json (seed)")
        status = json.loads(proc.stdout)
        waiting = [s["branch"] for s in status["snapshots"]]
        expected = ["feature2"] if self.path == "return" else []
        if waiting != expected or status["db_heads"] != [F1] or status["pending"]:
            raise SystemExit(f"the seed is not as expected: {status}")
        b.keep_seed(p)
        self.pre_ref = b.state(p)
        summary = b.summary(p)
        if summary.get("users") is None or [u[1:] for u in summary["users"]] != EMAILS:
            raise SystemExit(f"the seed's users are not as expected: {summary}")

    def _fresh_project(self, name: str) -> Project:
        dest = self.root / name
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(self.seed_dir, dest, symlinks=True)
        self.backend.reset_live()
        return Project(
            dest,
            "alembic",
            dest / "alembic" / "versions",
            self.backend.url() or "sqlite:///app.db",
            {},
        )

    def _go(self, p: Project, to: str, outputs: list[str]) -> subprocess.CompletedProcess[str]:
        if self.path in HOOK_PATHS:
            proc: subprocess.CompletedProcess[str] = p.run(
                "git", "checkout", to, timeout=COMMAND_TIMEOUT
            )
        else:
            proc = p.run(BRANCHMIG, "switch", to, timeout=COMMAND_TIMEOUT)
        outputs.append(proc.stdout + proc.stderr)
        return proc

    def run_trial(self, trial: Trial) -> Trial:
        if self.path == "restore":
            return self._restore_trial(trial)
        b = self.backend
        p = self._fresh_project(f"trial{trial.index}")
        scratch = Path(tempfile.mkdtemp(dir=self.root))
        outputs: list[str] = []
        problems = trial.problems

        def command(label: str, *args: str) -> subprocess.CompletedProcess[str] | None:
            return run_command(p, problems, outputs, label, *args)

        try:
            pre = b.state(p)
            if pre != self.pre_ref:
                problems.append("the fresh copy differs from the seed (harness problem)")
            if self.path == "return":  # remembers this copy's database (SQLite)
                command("branchmig status (before)", BRANCHMIG, "status")
            move = run_move(p, self.path, scratch, trial.kill_after, self.kill_group, self.sig)
            record_move(trial, move, outputs, self.sig)
            if trial.kill_class == "":
                version = b.summary(p).get("version")
                trial.kill_class = "after" if version == [F2] else "before"

            command("branchmig status (recovery)", BRANCHMIG, "status")
            if p.journal.exists():
                problems.append("the journal is still there after branchmig status")
            command("branchmig sync", BRANCHMIG, "sync")
            branch = p.branch()
            now = b.state(p)
            if self.post_ref is None and trial.kill_after is None and not problems:
                self._set_post_ref(p, now)
            if branch == "feature1" and now == pre:
                trial.outcome = "pre"
            elif branch == "feature2" and self.post_ref is not None and now == self.post_ref:
                trial.outcome = "post"
            else:
                want = "pre (feature1)" if branch == "feature1" else "post (feature2)"
                problems.append(
                    f"after status + sync: {branch} checked out, database "
                    f"{_short(b.summary(p))}; not the {want} state"
                    f"{_diff(now, pre if branch == 'feature1' else self.post_ref)}"
                )

            # Every branch's data comes back: a round trip through both, by the same path.
            order = ["feature1", "feature2"] if branch != "feature1" else ["feature2", "feature1"]
            for to in order:
                try:
                    proc = self._go(p, to, outputs)
                except subprocess.TimeoutExpired:
                    problems.append(f"move to {to}: timed out")
                    break
                if proc.returncode != 0:
                    problems.append(
                        f"move to {to}: exit {proc.returncode}: {_last_lines(proc.stderr)}"
                    )
                    break
                if p.branch() != to:
                    problems.append(f"move to {to}: {p.branch()} is checked out")
                    break
                state = b.state(p)
                expected = pre if to == "feature1" else self.post_ref
                if state != expected:
                    summary = b.summary(p)
                    if (
                        to == "feature1"
                        and summary.get("users") is not None
                        and [tuple(u[1:]) for u in summary["users"]] != EMAILS
                    ):
                        problems.append(
                            f"feature1's data is lost: {to} brought back {_short(summary)}"
                        )
                    else:
                        problems.append(
                            f"back on {to}: database {_short(summary)}, not "
                            f"the {to} state{_diff(state, expected)}"
                        )
            final = command("branchmig status --json", BRANCHMIG, "status", "--json")
            keys: list[str] = []
            if final is not None and final.returncode == 0:
                data = json.loads(final.stdout)
                keys = [s["key"] for s in data.get("snapshots", [])]
                if data.get("pending") != [] or data.get("unknown") != []:
                    problems.append(
                        f"status --json: pending {data.get('pending')}, unknown "
                        f"{data.get('unknown')}"
                    )
                if data.get("interrupted"):
                    problems.append(f"status --json: interrupted {data['interrupted']}")
            if p.journal.exists():
                problems.append("the journal is there at the end")
            if any("Traceback" in text for text in outputs):
                problems.append(
                    "a Traceback in the output: "
                    + next(_last_lines(t, 3) for t in outputs if "Traceback" in t)
                )
            try:
                trial.orphans = b.orphans(p, keys)
            except Exception as err:  # noqa: BLE001
                trial.orphans = [f"(could not list: {err})"]
        except Exception as err:  # noqa: BLE001 - one trial's crash is a finding
            problems.append(f"harness error: {type(err).__name__}: {err}\n{traceback.format_exc()}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.rmtree(p.root, ignore_errors=True)
        if problems:
            trial.outcome = "BROKEN"
        return trial

    def _restore_trial(self, trial: Trial) -> Trial:
        """path=restore: the snapshot saved by name, the live database changed since (two
        users more), ``snapshot restore`` killed, the next command, then check_restore."""
        b = self.backend
        p = self._fresh_project(f"trial{trial.index}")
        scratch = Path(tempfile.mkdtemp(dir=self.root))
        option = RESTORE_OPTIONS[trial.index % len(RESTORE_OPTIONS)]
        after_it = RESTORE_NEXT[(trial.index // len(RESTORE_OPTIONS)) % len(RESTORE_NEXT)]
        trial.variant = f"restore {option or '(no option)'}, then {' '.join(after_it)}"
        r = RestoreRun(p, b, trial, option)
        try:
            if r.command("branchmig snapshot save", BRANCHMIG, "snapshot", "save", RESTORE_NAME):
                r.after = b.state(p)
                b.insert_users(p)
                r.before = b.state(p)
                if r.before == r.after:
                    raise RuntimeError("the change after the save changed nothing")
                self._restore_killed(r, scratch)
                r.command(f"branchmig {' '.join(after_it)} (next)", BRANCHMIG, *after_it)
                if p.journal.exists():
                    trial.problems.append("the journal is still there after the next command")
                check_restore(r)
                if self.post_ref is None and trial.kill_after is None and not trial.problems:
                    self.post_ref = r.after
        except Exception as err:  # noqa: BLE001 - one trial's crash is a finding
            trial.problems.append(
                f"harness error: {type(err).__name__}: {err}\n{traceback.format_exc()}"
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.rmtree(p.root, ignore_errors=True)
        if any("Traceback" in text for text in r.outputs):
            trial.problems.append(
                "a Traceback in the output: "
                + next(_last_lines(t, 3) for t in r.outputs if "Traceback" in t)
            )
        if trial.problems:
            trial.outcome = "BROKEN"
        return trial

    def _restore_killed(self, r: RestoreRun, scratch: Path) -> None:
        trial = r.trial
        move = run_move(
            r.p, self.path, scratch, trial.kill_after, self.kill_group, self.sig, r.option
        )
        record_move(trial, move, r.outputs, self.sig)
        if trial.kill_class == "":
            trial.kill_class = "after" if r.b.state(r.p) == r.after else "before"

    def _set_post_ref(self, p: Project, state: Any) -> None:
        summary = self.backend.summary(p)
        ok = (
            p.branch() == "feature2"
            and summary.get("version") == [F2]
            and "posts" in summary.get("tables", [])
            and [tuple(u[1:]) for u in summary.get("users", [])] == [(name,) for name, _ in EMAILS]
        )
        if not ok:
            raise SystemExit(
                f"{self.backend.name}/{self.path}: the unkilled move did not "
                f"reach feature2's state: {p.branch()} {summary}"
            )
        self.post_ref = state


# -- the restore path's checks ----------------------------------------------------------------


@dataclass
class RestoreRun:
    """A restore trial: its project, and the states its checks compare with."""

    p: Project
    b: Backend
    trial: Trial
    option: str  # --keep, --consume or "" (a snapshot saved by name is then kept)
    before: Any = None  # the live database the restore replaces
    after: Any = None  # the snapshot's rows
    outputs: list[str] = field(default_factory=list)

    @property
    def kept(self) -> bool:
        return self.option != "--consume"

    def command(self, label: str, *args: str) -> bool:
        proc = run_command(self.p, self.trial.problems, self.outputs, label, *args)
        return proc is not None and proc.returncode == 0

    def index(self, when: str) -> dict[str, dict[str, Any]] | None:
        """``snapshot list --json`` by key; a record without its copy, or a copy without
        its record (an orphan), said in the problems."""
        label = f"branchmig snapshot list --json ({when})"
        proc = run_command(self.p, self.trial.problems, self.outputs, label, BRANCHMIG, *LIST_JSON)
        if proc is None or proc.returncode != 0:
            return None
        index = {s["key"]: s for s in json.loads(proc.stdout)["snapshots"]}
        missing = sorted(k for k, s in index.items() if not s.get("present"))
        if missing:
            self.trial.problems.append(f"{when}: listed without a copy: {missing}")
        orphans = self.b.orphans(self.p, list(index))
        if orphans:
            self.trial.problems.append(f"{when}: copies no snapshot names: {orphans}")
            self.trial.orphans += [o for o in orphans if o not in self.trial.orphans]
        return index

    def gives(self, key: str, want: Any, what: str, option: str = "") -> None:
        """Restoring snapshot ``key`` makes the live database exactly ``want``."""
        args = ("snapshot", "restore", *filter(None, [option]), key)
        if not self.command(f"branchmig {' '.join(args)}", BRANCHMIG, *args):
            return
        state = self.b.state(self.p)
        if state != want:
            self.trial.problems.append(
                f"restoring '{key}' gave {_short(self.b.summary(self.p))}, not {what}"
                f"{_diff(state, want)}"
            )


LIST_JSON = ("snapshot", "list", "--json")


def check_restore(r: RestoreRun) -> None:
    """After a (killed) restore and the next command: the live database exactly as before
    the restore (pre) or the snapshot's rows (post); the index equal to the copies. Not
    finished: the snapshot still listed, and restoring it gives its rows. Finished: the
    snapshot listed iff it was to be kept (and then restoring it gives its rows), the rows
    it replaced kept as a ``replaced-…`` snapshot. A ``replaced-…`` snapshot listed gives
    the rows before the restore. Last, ``status --json`` has nothing pending or unknown."""
    trial, problems = r.trial, r.trial.problems
    now = r.b.state(r.p)
    if now == r.before:
        trial.outcome = "pre"
    elif now == r.after:
        trial.outcome = "post"
    else:
        problems.append(
            f"after the next command: database {_short(r.b.summary(r.p))}, neither the "
            f"state before the restore{_diff(now, r.before)} nor the snapshot's"
            f"{_diff(now, r.after)}"
        )
        return
    index = r.index("after the next command")
    if index is None:
        return
    listed = RESTORE_NAME in index
    replaced = sorted(k for k in index if k.startswith("replaced-"))
    if trial.outcome == "pre" and not listed:
        problems.append(f"unfinished, but '{RESTORE_NAME}' is not listed: {sorted(index)}")
    if trial.outcome == "post" and listed != r.kept:
        problems.append(
            f"finished {r.option or '(no option)'}, but '{RESTORE_NAME}' is "
            f"{'listed' if listed else 'not listed'}: {sorted(index)}"
        )
    if trial.outcome == "post" and not replaced:
        problems.append(f"finished, but no replaced-… snapshot is listed: {sorted(index)}")
    for key in replaced:
        r.gives(key, r.before, "the rows before the restore")
    if listed:
        r.gives(RESTORE_NAME, r.after, "the snapshot's rows", r.option)
    r.index("at the end")
    proc = run_command(
        r.p, problems, r.outputs, "branchmig status --json", BRANCHMIG, "status", "--json"
    )
    if proc is not None and proc.returncode == 0:
        data = json.loads(proc.stdout)
        if data.get("pending") != [] or data.get("unknown") != [] or data.get("interrupted"):
            problems.append(
                f"status --json: pending {data.get('pending')}, unknown "
                f"{data.get('unknown')}, interrupted {data.get('interrupted')}"
            )


def _last_lines(text: str, n: int = 2) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


def _short(summary: dict[str, Any]) -> str:
    if "error" in summary:
        return f"[{summary['error']}]"
    parts = [
        f"version={summary.get('version')}",
        "tables=" + ",".join(t for t in summary.get("tables", []) if t != "alembic_version"),
    ]
    if "users" in summary:
        parts.append(f"users={summary['users']}")
    return "{" + " ".join(parts) + "}"


def _diff(got: Any, want: Any) -> str:
    if want is None:
        return " (no post state known)"
    if isinstance(got, dict) and isinstance(want, dict):
        keys = [k for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)]
        return f" (differs in: {', '.join(keys)})"
    if isinstance(got, list) and isinstance(want, list):
        extra = [ln for ln in got if ln not in want][:2]
        missing = [ln for ln in want if ln not in got][:2]
        return f" (extra: {extra}; missing: {missing})"
    return ""


def _interrupted_at_start(stderr: str) -> bool:
    """A KeyboardInterrupt traceback none of whose frames is branchmig's own code (the
    interpreter's start-up, or the console script importing its entry module)."""
    if "Traceback" not in stderr or not stderr.rstrip().endswith("KeyboardInterrupt"):
        return False
    package = str(HERE.parent / "branchmig")
    frames = [ln for ln in stderr.splitlines() if ln.strip().startswith('File "')]
    own = [f for f in frames if package in f and "__editable__" not in f]
    return not own


# -- main --------------------------------------------------------------------------------------


def run_batch(
    backend_name: str,
    path: str,
    args: argparse.Namespace,
    template: Path,
    scratch: Path,
    rng: random.Random,
) -> tuple[list[Trial], list[Trial], float]:
    backend = make_backend(backend_name)
    root = scratch / f"{backend_name}-{path}"
    root.mkdir()
    try:
        sig = signal.SIGINT if args.signal == "INT" else signal.SIGKILL
        batch = Batch(backend, path, template, root, args.sleep, args.kill_group, sig)
        controls = [batch.run_trial(Trial(-1 - i, None)) for i in range(args.calibrate)]
        times = [t.move_seconds for t in controls if t.outcome != "BROKEN"]
        if not times or batch.post_ref is None:
            for t in controls:
                print(f"  control: {t.problems}", file=sys.stderr)
            raise SystemExit(f"{backend_name}/{path}: no unkilled move succeeded")
        window = statistics.median(times)
        print(
            f"{backend_name}/{path}: unkilled move {window:.2f} s "
            f"({', '.join(f'{t:.2f}' for t in times)}); {args.trials} trials",
            file=sys.stderr,
        )
        trials = []
        for i in range(args.trials):
            trial = batch.run_trial(Trial(i, rng.uniform(0.0, window)))
            trials.append(trial)
            mark = {"pre": ".", "post": "+", "BROKEN": "X"}.get(trial.outcome, "?")
            print(mark, end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        return controls, trials, window
    finally:
        backend.finish()
        shutil.rmtree(root, ignore_errors=True)


def export_code(ref: str, dest: Path) -> None:
    """``branchmig/`` and its hook templates at ``ref``, first on every command's path
    (ahead of the editable install's finder)."""
    dest.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(HERE.parent), "archive", ref, "branchmig", "hooks"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    shutil.move(str(dest / "hooks"), str(dest / "branchmig" / "hook_scripts"))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(dest), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    found = subprocess.run(
        [sys.executable, "-c", "import branchmig; print(branchmig.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=dest.parent,
    ).stdout.strip()
    if not found.startswith(str(dest)):
        raise SystemExit(f"the exported code is not the one imported ({found})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50, help="trials per backend x path")
    parser.add_argument("--backends", default="sqlite,postgresql,mysql")
    parser.add_argument("--paths", default="hook,switch,return")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the kill times")
    parser.add_argument(
        "--sleep",
        type=float,
        default=0.1,
        help="seconds feature1's downgrade and feature2's upgrade sleep, "
        "before and after their DDL",
    )
    parser.add_argument(
        "--calibrate",
        type=int,
        default=3,
        help="unkilled moves per batch, timed (and checked) first",
    )
    parser.add_argument(
        "--code",
        default="worktree",
        help="the branchmig to test: 'worktree' (the installed, editable "
        "checkout, as it is now) or a git ref of this repository, "
        "exported to a temporary folder and put first on PYTHONPATH",
    )
    parser.add_argument(
        "--kill-group",
        action="store_true",
        help="SIGKILL the move's whole process group (git included on the "
        "hook path) instead of the one branchmig process",
    )
    parser.add_argument(
        "--signal",
        choices=["KILL", "INT"],
        default="KILL",
        help="what the move receives: SIGKILL, or SIGINT as a terminal's Ctrl-C sends it "
        "(to the whole group with --kill-group)",
    )
    parser.add_argument(
        "--object-format",
        choices=("sha1", "sha256"),
        default=os.environ.get("BRANCHMIG_TEST_OBJECT_FORMAT", "sha1"),
        help="the object format of the trials' git repositories (default: "
        "$BRANCHMIG_TEST_OBJECT_FORMAT, else sha1)",
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    paths = [x.strip() for x in args.paths.split(",") if x.strip()]
    for x in paths:
        if x not in PATHS:
            raise SystemExit(f"unknown path {x!r} ({', '.join(PATHS)})")
    if args.code == "worktree":
        head = subprocess.run(
            ["git", "-C", str(HERE.parent), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        code = f"the working tree ({head or '?'})"
    else:
        head = subprocess.run(
            ["git", "-C", str(HERE.parent), "rev-parse", "--short", args.code],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if not head:
            raise SystemExit(f"--code {args.code!r} is not a git ref of {HERE.parent}")
        code = f"{args.code} ({head})"
    print(
        f"seed {seed}; branchmig: {code}; kill window = median unkilled move; "
        f"migration sleep {args.sleep} s x2 per step; {args.object_format} repositories",
        file=sys.stderr,
    )

    rows = []
    broken: list[tuple[str, str, Trial]] = []
    with tempfile.TemporaryDirectory(prefix="bm-fault-") as tmp:
        scratch = Path(tmp)
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
        if args.code != "worktree":
            export_code(args.code, scratch / "code")
        template = scratch / "template"
        build_alembic_template(template, object_format=args.object_format)
        for backend_name in backends:
            for path in paths:
                if path == "return" and backend_name != "sqlite":
                    # A server's snapshots live on the server, and a trial's reset copies
                    # only the live database: the first restore would consume the rest's.
                    print(f"{backend_name}/return: skipped (SQLite only)", file=sys.stderr)
                    continue
                started = time.perf_counter()
                controls, trials, window = run_batch(
                    backend_name, path, args, template, scratch, rng
                )
                spent = time.perf_counter() - started
                classes = {
                    k: sum(t.kill_class == k for t in trials)
                    for k in ("before", "mid", "after", "finished")
                }
                outcomes = {
                    k: sum(t.outcome == k for t in trials) for k in ("pre", "post", "BROKEN")
                }
                orphans = sum(bool(t.orphans) for t in trials + controls)
                at_start = sum(t.at_start for t in trials)
                if at_start:
                    print(
                        f"  {backend_name}/{path}: {at_start} trial(s) interrupted while "
                        "Python itself started (its own KeyboardInterrupt message; no "
                        "branchmig code ran), checked like the others",
                        file=sys.stderr,
                    )
                rows.append(
                    (
                        backend_name,
                        path,
                        len(trials),
                        classes,
                        outcomes,
                        sum(t.outcome == "BROKEN" for t in controls),
                        orphans,
                        window,
                        spent,
                    )
                )
                broken += [
                    (backend_name, path, t) for t in controls + trials if t.outcome == "BROKEN"
                ]
                for t in controls + trials:
                    if t.orphans and t.outcome != "BROKEN":
                        print(
                            f"  orphan snapshot copies ({backend_name}/{path} trial "
                            f"{t.index}, {t.kill_class}): {t.orphans}",
                            file=sys.stderr,
                        )

    moves = []
    if set(paths) - {"restore"}:
        moves.append("a move feature1 -> feature2, then branchmig status + sync")
    if "restore" in paths:
        moves.append(
            f"snapshot restore {RESTORE_NAME} (--keep, --consume, neither), then "
            "snapshot list --json or status"
        )
    print(
        f"\nfault injection: {'; '.join(moves)}; the move sent SIG{args.signal}"
        f"{' (whole group)' if args.kill_group else ''} at a uniform instant in "
        f"[0, unkilled move time] (seed {seed})"
    )
    header = (
        f"{'backend':<11} {'path':<7} {'trials':>6} {'before':>6} {'mid':>5} "
        f"{'after':>5} {'done':>5} {'pre':>5} {'post':>5} {'broken':>6} "
        f"{'ctl-brk':>7} {'orphans':>7} {'move med':>8} {'batch':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, path, n, cl, oc, ctl, orph, window, spent in rows:
        print(
            f"{name:<11} {path:<7} {n:>6} {cl['before']:>6} {cl['mid']:>5} "
            f"{cl['after']:>5} {cl['finished']:>5} {oc['pre']:>5} {oc['post']:>5} "
            f"{oc['BROKEN']:>6} {ctl:>7} {orph:>7} {window:>7.2f}s {spent:>6.0f}s"
        )
    print(
        "before/mid/after: killed before the move's journal existed / with it / after the "
        "move completed; done: finished before the kill instant; ctl-brk: broken unkilled "
        "control moves; orphans: trials leaving snapshot copies no record names"
    )
    if broken:
        print(f"\nBROKEN trials ({len(broken)}):")
        for name, path, t in broken:
            when = (
                "control (unkilled)"
                if t.kill_after is None
                else f"kill at {1000 * t.kill_after:.0f} ms, {t.kill_class}"
            )
            journal = t.journal_at_kill
            if journal:
                when += (
                    f", journal phase={journal.get('phase')} "
                    f"checked_out={journal.get('checked_out')}"
                )
            if t.waited_for_hook:
                when += ", hookrun killed as it appeared"
            if t.last_output:
                when += f", last output: {t.last_output!r}"
            if t.variant:
                when += f", {t.variant}"
            print(f"- {name}/{path} trial {t.index}: {when}")
            for problem in t.problems:
                print(f"    {problem}")
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
