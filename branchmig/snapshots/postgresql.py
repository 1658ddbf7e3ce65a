"""PostgreSQL snapshots: whole databases on the same server, restored by renaming.

Save is ``CREATE DATABASE snap TEMPLATE live``; restore is two ``ALTER DATABASE … RENAME``
in one transaction, O(1) whatever the size. Both need autocommit, a role that may create
databases and owns the live one, and no other session on the live database.

A role that may not create databases falls back to ``pg_dump -Fc`` into a file of the
store folder and ``pg_restore`` into the live database, inside one transaction that first
drops the objects the role owns there (objects of other roles and extension members are
left alone; the dump's ``--clean`` still replaces those it holds).

A template copy is owned by the role that makes it and has none of the database's own
attributes, so a save carries them over: owner, privileges (``GRANT … ON DATABASE``),
connection limit and settings (``ALTER [ROLE …IN] DATABASE … SET``). A restore renames, so
the database made live again has them as they were when it was saved.

Snapshot databases are found by a comment (``COMMENT ON DATABASE``) naming the live
database and the key, so ``stored()`` is exact even when names are hashed to fit 63 bytes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from branchmig.errors import DatabaseError, SnapshotError
from branchmig.snapshots.base import (
    Progress,
    SessionsBlockingError,
    StoredSnapshot,
    check_key,
    check_restore_keys,
    reporting,
    short_hash,
)
from branchmig.snapshots.folder import SnapshotFolder
from branchmig.snapshots.pgsurvey import (
    COMMENT_PREFIX,
    Reach,
    Target,
    dump_snapshots,
    snapshot_database_name,
    snapshots_in,
)
from branchmig.snapshots.pgsurvey import marker as _marker
from branchmig.urls import parse_server_url

__all__ = ["PostgreSQLBackend", "snapshot_database_name"]

# psycopg loads with the first connection: importing this module stays cheap.
if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

    Connection = psycopg.Connection[tuple[Any, ...]]

# STRATEGY FILE_COPY (PostgreSQL 15+) costs two checkpoints whatever the size but then copies
# files; WAL_LOG writes every page through the WAL. benchmarks/bench_snapshots.py on PG 15:
# 18 MB: WAL_LOG 0.28 s, FILE_COPY 0.42 s; 1.1 GB: WAL_LOG 6.2 s, FILE_COPY 2.8 s.
FILE_COPY_ABOVE_BYTES = 64 * 1024 * 1024
# How long sessions that are ending anyway get before they count as blocking.
ENDING_GRACE_SECONDS = 1.0
# How long the dump fallback waits for another session's locks before giving up.
LOCK_TIMEOUT = "10s"
TERMINATE_WAIT_SECONDS = 5.0
# Settings whose value PostgreSQL keeps as a list of quoted names ("$user", public): they
# are set back as written, the others as one string.
LIST_SETTINGS = frozenset(
    {"search_path", "temp_tablespaces", "session_preload_libraries", "local_preload_libraries"}
)


class _SaveFacts(NamedTuple):
    may_clone: bool
    size: int
    target_exists: bool
    others_connected: bool
    owner: str | None  # None: the role that saves
    connection_limit: int
    # (grantee, privilege, with grant option), a grantee of None being PUBLIC; None: the
    # default privileges.
    grants: list[tuple[str | None, str, bool]] | None
    settings: list[tuple[str | None, list[str]]]  # (role or None: everyone, ["name=value"])


class PostgreSQLBackend:
    """Snapshots of one PostgreSQL database, kept as databases on its server."""

    name = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        store_dir: Path,
        terminate_connections: bool = False,
        progress: Progress | None = None,
    ) -> None:
        self.masked_url, parsed = parse_server_url(url)
        self._reach = Reach.of_url(parsed)
        self.live: str = self._reach.live
        self.store_dir = store_dir
        self.folder = SnapshotFolder(store_dir)
        self.terminate_connections = terminate_connections
        self.progress = progress
        self._params = dict(self._reach.params)
        self._password = self._reach.password
        self._where = self._reach.where
        self._dump_prefix = self._reach.dump_prefix

    # -- the protocol --------------------------------------------------------------------

    def describe(self) -> str:
        return f"PostgreSQL database {self.live!r} on {self._where}"

    def target(self) -> Target:
        """How ``pgsurvey`` reaches this database without a driver: the same parameters."""
        return self._reach.target()

    def exists(self, key: str) -> bool:
        check_key(key)
        return any(snap.key == key for snap in self.stored())

    def live_size(self) -> int:
        with self._connect() as conn:
            return self._database_size(conn, self.live)

    def stored(self) -> list[StoredSnapshot]:
        with self._connect() as conn:
            found = {snap.key: snap for snap in self._dump_snapshots()}
            found.update((snap.key, snap) for snap in self._database_snapshots(conn))
        return sorted(found.values(), key=lambda snap: snap.key)

    def save(self, key: str) -> StoredSnapshot:
        import psycopg
        from psycopg import sql

        check_key(key)
        target = snapshot_database_name(self.live, key)
        with self._connect() as conn:
            facts = self._facts_for_save(conn, target)
            if facts is None:
                self._require_live(conn, action="save", key=key)  # raises: it is gone
                raise AssertionError("unreachable")
            if not facts.may_clone:
                return self._dump(key)
            size = facts.size
            if facts.others_connected:
                self._clear_sessions(conn, [self.live], action="save", key=key)
            stem = self._partial_stem()
            self._drop_left_partials(conn, stem)
            partial = f"{stem}{secrets.token_hex(8)}"
            with reporting(self.progress, "saved", lambda: size, total=lambda: size):
                try:
                    conn.execute(
                        sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
                            sql.Identifier(partial),
                            sql.Identifier(self.live),
                            self._strategy(conn, size),
                        )
                    )
                except psycopg.errors.ObjectInUse as err:
                    # A session connected between our check and the copy.
                    self._clear_sessions(conn, [self.live], action="save", key=key)
                    raise self._error("save", key, err) from err
                except psycopg.Error as err:
                    raise self._error("save", key, err) from err
                try:
                    if facts.target_exists:
                        self._drop_database(conn, target, action="save", key=key)
                    with conn.transaction():
                        self._carry_attributes(conn, facts, partial)
                        self._comment(conn, partial, _marker(self.live, key))
                        conn.execute(
                            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                                sql.Identifier(partial), sql.Identifier(target)
                            )
                        )
                except psycopg.Error as err:
                    conn.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(partial))
                    )
                    raise self._error("save", key, err) from err
                except BaseException:
                    conn.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(partial))
                    )
                    raise
            self._remove_dump(key)
            return StoredSnapshot(key, self.name, target, size)

    def _partial_stem(self) -> str:
        """The start of a save's copy's name until it is complete: named after the live
        database, so that the next save, restore or drop drops what a killed one left."""
        return f"bm_partial_{short_hash(self.live)}_"

    @staticmethod
    def _drop_left_partials(conn: Connection, stem: str) -> None:
        import psycopg
        from psycopg import sql

        left = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (stem,)
        ).fetchall()
        for (name,) in left:
            with contextlib.suppress(psycopg.Error):  # another save's, still being made
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))

    def restore(self, key: str, *, keep_current_as: str | None = None) -> None:
        check_restore_keys(self, key, keep_current_as)
        with self._connect() as conn:
            # A save killed part-way (a recovery restores): its copy is no use to anyone.
            self._drop_left_partials(conn, self._partial_stem())
            snapshots = {snap.key: snap for snap in self._database_snapshots(conn)}
            if key in snapshots:
                self._swap(conn, snapshots[key].location, key, keep_current_as)
                return
        if self._dump_path(key).is_file():
            self._restore_dump(key, keep_current_as)
            return
        raise SnapshotError(
            f"There is no snapshot {key!r} of {self.describe()}. Run: branchmig snapshot list"
        )

    def drop(self, key: str) -> None:
        check_key(key)
        with self._connect() as conn:
            self._drop_left_partials(conn, self._partial_stem())
            for snap in self._database_snapshots(conn):
                if snap.key == key:
                    self._drop_database(conn, snap.location, action="drop", key=key)
        self._remove_dump(key)

    # -- databases as snapshots ------------------------------------------------------------

    def _swap(self, conn: Connection, snapshot: str, key: str, keep_as: str | None) -> None:
        import psycopg
        from psycopg import sql

        live_exists = self._database_exists(conn, self.live)
        self._clear_sessions(conn, [self.live, snapshot], action="restore", key=key)
        if keep_as is not None:
            old = snapshot_database_name(self.live, keep_as)
            self._drop_database(conn, old, action="restore", key=key)
            self._remove_dump(keep_as)
        else:
            old = f"bm_replaced_{secrets.token_hex(8)}"
        live_comment = self._comment_of(conn, self.live) if live_exists else None
        rename = sql.SQL("ALTER DATABASE {} RENAME TO {}")
        try:
            # Both renames commit together: the live name never points at nothing.
            with conn.transaction():
                if live_exists:
                    conn.execute(rename.format(sql.Identifier(self.live), sql.Identifier(old)))
                conn.execute(rename.format(sql.Identifier(snapshot), sql.Identifier(self.live)))
                self._comment(conn, self.live, live_comment)
                if live_exists and keep_as is not None:
                    self._comment(conn, old, _marker(self.live, keep_as))
        except psycopg.errors.ObjectInUse as err:
            self._clear_sessions(conn, [self.live, snapshot], action="restore", key=key)
            raise self._error("restore", key, err) from err
        except psycopg.Error as err:
            raise self._error("restore", key, err) from err
        if live_exists and keep_as is None:
            self._drop_database(conn, old, action="restore", key=key)

    def _database_snapshots(self, conn: Connection) -> list[StoredSnapshot]:
        rows = conn.execute(
            """
            SELECT d.datname, shobj_description(d.oid, 'pg_database'),
                   CASE WHEN has_database_privilege(d.oid, 'CONNECT')
                        THEN pg_database_size(d.oid) ELSE 0 END
            FROM pg_database d
            WHERE shobj_description(d.oid, 'pg_database') LIKE %s
            """,
            (COMMENT_PREFIX.replace("_", r"\_") + "%",),
        ).fetchall()
        return snapshots_in(self.live, rows)

    def _facts_for_save(self, conn: Connection, target: str) -> _SaveFacts | None:
        """In one round trip (a save on a small database is over in a few of them): whether
        the role may copy the live database, its size, whether ``target`` exists already,
        whether other sessions are connected to it, and the attributes a copy does not
        inherit. None when the live database is gone."""
        row = conn.execute(
            """
            SELECT r.rolsuper OR (r.rolcreatedb AND d.datdba = r.oid),
                   CASE WHEN has_database_privilege(d.oid, 'CONNECT')
                        THEN pg_database_size(d.oid) ELSE 0 END,
                   EXISTS (SELECT 1 FROM pg_database WHERE datname = %(target)s),
                   EXISTS (SELECT 1 FROM pg_stat_activity
                           WHERE datname = %(live)s AND pid <> pg_backend_pid()
                                 AND backend_type = 'client backend'),
                   CASE WHEN d.datdba <> r.oid THEN pg_get_userbyid(d.datdba) END,
                   d.datconnlimit,
                   CASE WHEN d.datacl IS NOT NULL THEN
                       (SELECT coalesce(json_agg(json_build_array(
                                   CASE WHEN a.grantee <> 0 THEN pg_get_userbyid(a.grantee) END,
                                   a.privilege_type, a.is_grantable)), '[]')
                        FROM aclexplode(d.datacl) a) END,
                   (SELECT coalesce(json_agg(json_build_array(
                               CASE WHEN s.setrole <> 0 THEN pg_get_userbyid(s.setrole) END,
                               s.setconfig)), '[]')
                    FROM pg_db_role_setting s WHERE s.setdatabase = d.oid)
            FROM pg_database d, pg_roles r
            WHERE d.datname = %(live)s AND r.rolname = current_user
            """,
            {"live": self.live, "target": target},
        ).fetchone()
        if row is None:
            return None
        grants = None if row[6] is None else [tuple(grant) for grant in row[6]]
        return _SaveFacts(
            bool(row[0]), int(row[1]), bool(row[2]), bool(row[3]), row[4], int(row[5]),
            grants, [tuple(setting) for setting in row[7]],
        )  # fmt: skip

    def _carry_attributes(self, conn: Connection, facts: _SaveFacts, copy: str) -> None:
        """Give ``copy`` the live database's owner, privileges, connection limit and
        settings. A role that may copy the database may set all of them, except another
        role's settings when it is not a superuser: those are left out, and said."""
        import psycopg
        from psycopg import sql

        database = sql.Identifier(copy)
        if facts.owner is not None:  # first: privileges granted next name the owner
            conn.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                    database, sql.Identifier(facts.owner)
                )
            )
        if facts.grants is not None:
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
            owner = sql.Identifier(facts.owner) if facts.owner else sql.SQL("CURRENT_USER")
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(database, owner))
            for grantee, privilege, grantable in facts.grants:
                conn.execute(
                    sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                        sql.SQL(privilege),  # CREATE, TEMPORARY or CONNECT, from aclexplode
                        database,
                        sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee),
                        sql.SQL(" WITH GRANT OPTION" if grantable else ""),
                    )
                )
        if facts.connection_limit != -1:
            conn.execute(
                sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(
                    database, sql.Literal(facts.connection_limit)
                )
            )
        for role, entries in facts.settings:
            alter = (
                sql.SQL("ALTER DATABASE {}").format(database)
                if role is None
                else sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(role), database)
            )
            try:
                with conn.transaction():
                    for entry in entries:
                        name, _, value = entry.partition("=")
                        # A list's value comes back as PostgreSQL wrote it: names quoted.
                        given = sql.SQL(value) if name.lower() in LIST_SETTINGS else None
                        conn.execute(
                            sql.SQL("{} SET {} TO {}").format(
                                alter,
                                sql.Identifier(*name.split(".")),
                                given or sql.Literal(value),
                            )
                        )
            except psycopg.errors.InsufficientPrivilege:
                if role is None:
                    raise
                if self.progress is not None:
                    self.progress(
                        f"branchmig: the snapshot leaves out the settings of role {role!r} "
                        f"in {self.live!r} ({', '.join(entries)}): only a superuser may copy them"
                    )

    @staticmethod
    def _strategy(conn: Connection, size: int) -> sql.Composable:
        from psycopg import sql

        if conn.info.server_version < 150000:
            return sql.SQL("")
        return sql.SQL(
            " STRATEGY FILE_COPY" if size > FILE_COPY_ABOVE_BYTES else " STRATEGY WAL_LOG"
        )

    def _clear_sessions(
        self, conn: Connection, databases: Sequence[str], *, action: str, key: str
    ) -> None:
        """End or name the other sessions on ``databases``: they block TEMPLATE and RENAME."""
        sessions = self._sessions(conn, databases)
        # Connections just closed (our own disposed pool, a killed client) leave their
        # backends in pg_stat_activity for a moment: give them that moment.
        deadline = time.monotonic() + ENDING_GRACE_SECONDS
        while sessions and time.monotonic() < deadline:
            time.sleep(0.05)
            sessions = self._sessions(conn, databases)
        if sessions and self.terminate_connections:
            for pid, *_ in sessions:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            if self.progress is not None:
                ended = [
                    f"pid {pid} (user {user}, {app or 'no application_name'}, from {addr})"
                    for pid, app, addr, _, user in sessions
                ]
                self.progress(
                    f"branchmig: ended {len(ended)} session(s) on {self.describe()} "
                    f"(--terminate-connections): {', '.join(ended)}"
                )
            deadline = time.monotonic() + TERMINATE_WAIT_SECONDS
            while sessions and time.monotonic() < deadline:
                time.sleep(0.05)
                sessions = self._sessions(conn, databases)
        if sessions:
            named = [
                f"pid {pid} ({app or 'no application_name'}, from {addr})"
                for pid, app, addr, *_ in sessions
            ]
            raise SessionsBlockingError(
                f"Cannot {action} snapshot {key!r} of {self.describe()}: "
                f"{len(named)} other session{'s are' if len(named) != 1 else ' is'} connected: "
                f"{', '.join(named)}.",
                sessions=named,
            )

    @staticmethod
    def _sessions(conn: Connection, databases: Sequence[str]) -> list[tuple[Any, ...]]:
        return conn.execute(
            """
            SELECT pid, application_name, coalesce(host(client_addr), 'local socket'), datname,
                   usename
            FROM pg_stat_activity
            WHERE datname = ANY(%s) AND pid <> pg_backend_pid()
                  AND backend_type = 'client backend'
            ORDER BY pid
            """,
            (list(databases),),
        ).fetchall()

    def _drop_database(self, conn: Connection, name: str, *, action: str, key: str) -> None:
        import psycopg
        from psycopg import sql

        if not self._database_exists(conn, name):
            return
        self._clear_sessions(conn, [name], action=action, key=key)
        try:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        except psycopg.Error as err:
            raise self._error(action, key, err) from err

    @staticmethod
    def _comment(conn: Connection, name: str, text: str | None) -> None:
        from psycopg import sql

        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(text))
        )

    @staticmethod
    def _comment_of(conn: Connection, name: str) -> str | None:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()
        return None if row is None else row[0]

    @staticmethod
    def _database_exists(conn: Connection, name: str) -> bool:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return found is not None

    @staticmethod
    def _database_size(conn: Connection, name: str) -> int:
        row = conn.execute(
            """
            SELECT CASE WHEN has_database_privilege(oid, 'CONNECT')
                        THEN pg_database_size(oid) ELSE 0 END
            FROM pg_database WHERE datname = %s
            """,
            (name,),
        ).fetchone()
        return 0 if row is None else int(row[0])

    def _require_live(self, conn: Connection, *, action: str, key: str) -> None:
        if not self._database_exists(conn, self.live):
            raise SnapshotError(
                f"Cannot {action} snapshot {key!r}: {self.describe()} does not exist. "
                "Create it (alembic upgrade head) or run with --no-snapshot."
            )

    def _connect(self) -> Connection:
        """An autocommit session on the maintenance database, never on the live one."""
        import psycopg
        from psycopg.conninfo import make_conninfo

        candidates = [name for name in ("postgres", "template1") if name != self.live]
        for dbname in candidates:
            try:
                conninfo = make_conninfo(
                    **{"application_name": "branchmig", "connect_timeout": "10", **self._params},
                    dbname=dbname,
                    password=self._password,
                )
                return psycopg.connect(conninfo, autocommit=True)
            except psycopg.OperationalError as err:
                missing = f'database "{dbname}" does not exist' in str(err)
                if missing and dbname != candidates[-1]:
                    continue
                reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err)
                raise DatabaseError(
                    f"Cannot connect to PostgreSQL at {self.masked_url}: {reason}. "
                    "Check that the server runs and the URL is right."
                ) from err
        raise AssertionError("unreachable")

    def _error(self, action: str, key: str, err: psycopg.Error) -> SnapshotError:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return SnapshotError(f"Cannot {action} snapshot {key!r} of {self.describe()}: {reason}.")

    # -- dump files, for roles that may not create databases --------------------------------

    def _dump_name(self, key: str) -> str:
        return f"{self._dump_prefix}{check_key(key)}.dump"

    def _dump_path(self, key: str) -> Path:
        return self.folder.file(self._dump_name(key))

    def _dump_snapshots(self) -> list[StoredSnapshot]:
        return dump_snapshots(self.folder, self._dump_prefix)

    def _remove_dump(self, key: str) -> None:
        self.folder.remove(self._dump_name(key))

    def _dump(self, key: str) -> StoredSnapshot:
        try:
            with (
                self.folder.writing(self._dump_name(key)) as partial,
                reporting(
                    self.progress,
                    "dumped",
                    lambda: partial.stat().st_size,
                    so_far=lambda: partial.stat().st_size,
                ),
            ):
                self._run(
                    ["pg_dump", "--format=custom", f"--file={partial}", self._conninfo()],
                    action="save",
                    key=key,
                )
        except OSError as err:  # a full disk, a folder not writable
            raise SnapshotError(
                f"Cannot save snapshot {key!r} of {self.describe()} into {self.store_dir}: "
                f"{err.strerror or err}; free some space, then run the command again"
            ) from err
        target = self._dump_path(key)
        return StoredSnapshot(key, self.name, str(target), target.stat().st_size)

    def _restore_dump(self, key: str, keep_as: str | None) -> None:
        dump = self._dump_path(key)
        if keep_as is not None:
            with self._connect() as conn:
                for snap in self._database_snapshots(conn):
                    if snap.key == keep_as:
                        self._drop_database(conn, snap.location, action="restore", key=key)
            self._dump(keep_as)
        size = dump.stat().st_size
        with reporting(self.progress, "restored", lambda: size, total=lambda: size):
            # pg_restore writes SQL that psql runs after our clean-up, all in one transaction:
            # a failure leaves the live database as it was.
            restore = ["pg_restore", "--clean", "--if-exists", "--no-owner", "--file=-", str(dump)]
            apply = [
                "psql", "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--single-transaction",
                f"--command={_DROP_OWNED_OBJECTS}", "--file=-", self._conninfo(),
            ]  # fmt: skip
            self._run_piped(restore, apply, action="restore", key=key)
        self._remove_dump(key)

    def _conninfo(self) -> str:
        from psycopg.conninfo import make_conninfo

        params = {k: v for k, v in self._params.items() if k != "password"}
        return make_conninfo(**params, dbname=self.live)

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if self._password is not None:
            env["PGPASSWORD"] = self._password  # never on the command line: ps shows it
        env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} -c lock_timeout={LOCK_TIMEOUT}".strip()
        env.setdefault("PGAPPNAME", "branchmig")
        return env

    def _run(self, argv: list[str], *, action: str, key: str) -> None:
        try:
            done = subprocess.run(
                argv, env=self._environment(), capture_output=True, text=True, check=False
            )
        except FileNotFoundError as err:
            raise self._missing_tool(argv[0], action, key) from err
        if done.returncode != 0:
            raise self._tool_failed(argv[0], done.stderr, action, key)

    def _run_piped(self, first: list[str], second: list[str], *, action: str, key: str) -> None:
        env = self._environment()
        try:
            producer = subprocess.Popen(
                first, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except FileNotFoundError as err:
            raise self._missing_tool(first[0], action, key) from err
        assert producer.stdout is not None and producer.stderr is not None
        try:
            consumer = subprocess.run(
                second, env=env, stdin=producer.stdout, capture_output=True, text=True,
                check=False,
            )  # fmt: skip
        except FileNotFoundError as err:
            producer.kill()
            producer.wait()
            raise self._missing_tool(second[0], action, key) from err
        finally:
            producer.stdout.close()
        producer_errors = producer.stderr.read().decode(errors="replace")
        producer.stderr.close()
        if producer.wait() != 0:
            raise self._tool_failed(first[0], producer_errors, action, key)
        if consumer.returncode != 0:
            raise self._tool_failed(second[0], consumer.stderr, action, key)

    def _missing_tool(self, tool: str, action: str, key: str) -> SnapshotError:
        return SnapshotError(
            f"Cannot {action} snapshot {key!r} of {self.describe()}: the role may not create "
            f"databases, so branchmig uses {tool}, which is not on PATH. Install the PostgreSQL "
            "client tools (same major version as the server or newer), or grant CREATEDB."
        )

    def _tool_failed(self, tool: str, stderr: str, action: str, key: str) -> SnapshotError:
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        reason = _first_error(lines) or f"{tool} failed"
        return SnapshotError(f"Cannot {action} snapshot {key!r} of {self.describe()}: {reason}")


def _first_error(lines: Iterable[str]) -> str:
    lines = list(lines)
    for line in lines:
        if "error" in line.lower() or "fatal" in line.lower():
            return line.strip()
    return lines[-1].strip() if lines else ""


# Runs first in the restore transaction: removes what the role owns in the live database so
# tables created after the dump do not survive the restore. Objects are looked up again just
# before each DROP, because a CASCADE may already have taken them.
_DROP_OWNED_OBJECTS = r"""
DO $branchmig$
DECLARE
    me oid := (SELECT oid FROM pg_roles WHERE rolname = current_user);
    r record;
BEGIN
    FOR r IN
        SELECT n.oid, n.nspname FROM pg_namespace n
        WHERE n.nspowner = me AND n.nspname <> 'public' AND n.nspname NOT LIKE 'pg\_%'
              AND n.nspname <> 'information_schema'
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                              AND d.objid = n.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', r.nspname);
    END LOOP;
    FOR r IN
        SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relowner = me AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
              AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                              AND d.objid = c.oid AND d.deptype = 'e')
    LOOP
        IF EXISTS (SELECT 1 FROM pg_class WHERE oid = r.oid) THEN
            EXECUTE format('DROP %s IF EXISTS %s CASCADE',
                CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                     WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                r.oid::regclass);
        END IF;
    END LOOP;
    FOR r IN
        SELECT t.oid, t.typtype FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE t.typowner = me AND t.typtype IN ('e', 'd', 'r', 'c')
              AND (t.typtype <> 'c'
                   OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
              AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                              AND d.objid = t.oid AND d.deptype = 'e')
    LOOP
        IF EXISTS (SELECT 1 FROM pg_type WHERE oid = r.oid) THEN
            EXECUTE format('DROP %s IF EXISTS %s CASCADE',
                CASE r.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, r.oid::regtype);
        END IF;
    END LOOP;
    FOR r IN
        SELECT p.oid, p.prokind FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.proowner = me
              AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                              AND d.objid = p.oid AND d.deptype = 'e')
    LOOP
        IF EXISTS (SELECT 1 FROM pg_proc WHERE oid = r.oid) THEN
            EXECUTE format('DROP %s IF EXISTS %s CASCADE',
                CASE r.prokind WHEN 'a' THEN 'AGGREGATE' ELSE 'ROUTINE' END, r.oid::regprocedure);
        END IF;
    END LOOP;
END
$branchmig$;
"""
