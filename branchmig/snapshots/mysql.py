"""MySQL / MariaDB snapshots: a database per snapshot on the same server, swapped in by
one atomic multi-table ``RENAME TABLE``.

Save copies every base table of the live database: ``SHOW CREATE TABLE`` replayed in the
snapshot database (keeps indexes, foreign keys, AUTO_INCREMENT), then ``INSERT … SELECT``
of the tables over several connections while another holds them ``LOCK TABLES … READ``,
so the copy is one instant of the live database (``mysql_copy``).
Restore moves the live tables out (into the ``keep_current_as`` snapshot, or a scratch
database that is dropped) and the snapshot's tables in, in a single ``RENAME TABLE``.

MariaDB sequences are copied (their definition, then ``SETVAL`` to the next value not yet
handed out, as mysqldump does) and move with the tables.

Views, stored functions and procedures, triggers and events cannot change database (and a
table with triggers cannot be renamed to another one), so a snapshot keeps their
definitions as rows of ``_branchmig_objects``. A restore drops the live database's, swaps
the tables, and creates the snapshot's: functions and procedures, then views (one that
reads another waits for it), triggers in firing order, events. If the swap fails, or the
server refuses one of the snapshot's objects, everything is put back as it was.
Definitions are kept without their ``DEFINER``: the user who restores defines them, as the
migrations' user did when it created them.

A snapshot database holds a marker table, ``_branchmig_snapshot``, whose comment names the
live database and the key: that is how ``stored()`` finds exactly this database's snapshots.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import branchmig.snapshots.mysql_copy as mysql_copy
from branchmig import mysqltls
from branchmig.errors import DatabaseError, SnapshotError
from branchmig.snapshots.base import (
    KEY_PATTERN,
    Progress,
    SessionsBlockingError,
    StoredSnapshot,
    check_key,
    check_restore_keys,
    reporting,
    short_hash,
)
from branchmig.snapshots.mysql_copy import Job, quote
from branchmig.urls import parse_server_url

__all__ = ["MySQLBackend", "snapshot_database_name"]

# pymysql loads with the first connection: importing this module stays cheap.
if TYPE_CHECKING:
    import pymysql

MAX_NAME_CHARS = 64
SNAPSHOT_INFIX = "__bm_"
MARKER_TABLE = "_branchmig_snapshot"
OBJECTS_TABLE = "_branchmig_objects"
# Snapshots saved before views, routines and events were kept hold only their triggers.
TRIGGERS_TABLE = "_branchmig_triggers"
# A snapshot being made carries its marker under this name until it is complete; the
# restore that consumes a snapshot renames its marker to CONSUMED_TABLE in the same RENAME
# TABLE that swaps the data. So ``stored()`` never lists a half-made snapshot, nor one whose
# tables are gone, whenever a kill lands.
PENDING_TABLE = "_branchmig_pending"
CONSUMED_TABLE = "_branchmig_consumed"
OWN_TABLES = (MARKER_TABLE, OBJECTS_TABLE, TRIGGERS_TABLE, PENDING_TABLE, CONSUMED_TABLE)
MOVABLE_TABLE_TYPES = ("BASE TABLE", "SEQUENCE")
# How long a restore waits for other sessions' open transactions on the tables it renames.
LOCK_WAIT_SECONDS = 10
_LOCK_WAIT_TIMEOUT = 1205
# A view that reads a view created after it fails with one of these until the other exists.
_MISSING_REFERENCE = {1146, 1356}
_DEFINER = re.compile(
    r"^(CREATE(?:\s+ALGORITHM\s*=\s*\w+)?)\s+DEFINER\s*=\s*"
    r"(?:`(?:[^`]|``)*`|'(?:[^']|'')*'|[^\s@]+)"
    r"(?:\s*@\s*(?:`(?:[^`]|``)*`|'(?:[^']|'')*'|\S+))?(?=\s)",
    re.IGNORECASE,
)


class SchemaObject(NamedTuple):
    """A view, routine, trigger or event: what RENAME TABLE cannot carry to a snapshot."""

    kind: str  # FUNCTION, PROCEDURE, VIEW, TRIGGER or EVENT
    name: str
    statement: str  # CREATE …, without DEFINER
    sql_mode: str | None  # None: the session's
    time_zone: str | None


def snapshot_database_name(live: str, key: str) -> str:
    """``<live>__bm_<key>``, or a hashed short form of ``live`` when that exceeds 64 chars."""
    name = f"{live}{SNAPSHOT_INFIX}{check_key(key)}"
    if len(name) <= MAX_NAME_CHARS:
        return name
    # 10 + 1 + 8 + len("__bm_") + 40 (longest key) = 64.
    return f"{live[:10]}_{short_hash(live)}{SNAPSHOT_INFIX}{key}"


class MySQLBackend:
    """Snapshots of one MySQL/MariaDB database, kept as databases on its server."""

    name = "mysql"

    def __init__(
        self,
        url: str,
        *,
        store_dir: Path,
        terminate_connections: bool = False,
        progress: Progress | None = None,
    ) -> None:
        self.masked_url, parsed = parse_server_url(url)
        self.live: str = parsed.database
        self.terminate_connections = terminate_connections
        self.progress = progress
        self._connect_args: dict[str, Any] = {
            "host": parsed.host or "localhost",
            "port": parsed.port or 3306,
            "user": parsed.username or "",
            "password": "" if parsed.password is None else str(parsed.password),
            "charset": "utf8mb4",
        }
        for option in ("charset", "unix_socket"):
            value = parsed.query.get(option)
            if isinstance(value, str):
                self._connect_args[option] = value
        self._where = f"{self._connect_args['host']}:{self._connect_args['port']}"

    # -- the protocol --------------------------------------------------------------------

    def describe(self) -> str:
        return f"MySQL database {self.live!r} on {self._where}"

    def exists(self, key: str) -> bool:
        check_key(key)
        return any(snap.key == key for snap in self.stored())

    def live_size(self) -> int:
        with self._session() as cur:
            return self._database_size(cur, self.live)

    def stored(self) -> list[StoredSnapshot]:
        with self._session() as cur:
            return self._stored(cur)

    def save(self, key: str) -> StoredSnapshot:
        check_key(key)
        target = snapshot_database_name(self.live, key)
        with self._session() as cur:
            if not self._database_exists(cur, self.live):
                raise SnapshotError(
                    f"Cannot save snapshot {key!r}: {self.describe()} does not exist. "
                    "Create it (alembic upgrade head) or run with --no-snapshot."
                )
            self._drop_left_over(cur)
            # The live line measures on connections of its own: ``cur`` is busy.
            with reporting(
                self.progress,
                "saved",
                lambda: self._database_size(cur, target),
                so_far=lambda: self._measured_files(target),
                total=lambda: self._measured_files(self.live),
            ):
                cur.execute(f"DROP DATABASE IF EXISTS {quote(target)}")
                try:
                    self._create_database_like_live(cur, target, key)
                    self._copy_frozen(cur, target, key)
                    _rename_tables(cur, [(target, PENDING_TABLE, target, MARKER_TABLE)])
                except BaseException:
                    cur.execute(f"DROP DATABASE IF EXISTS {quote(target)}")
                    raise
                self._analyze(cur, target)
            return StoredSnapshot(key, self.name, target, self._database_size(cur, target))

    def restore(self, key: str, *, keep_current_as: str | None = None) -> None:
        check_restore_keys(self, key, keep_current_as)
        with self._session() as cur:
            snapshots = {snap.key: snap for snap in self._stored(cur)}
            if key not in snapshots:
                raise SnapshotError(
                    f"There is no snapshot {key!r} of {self.describe()}. "
                    "Run: branchmig snapshot list"
                )
            snapshot = snapshots[key].location
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote(self.live)}")
            # Named after the live database, so privileges granted on the app's databases
            # (app, app__bm_*) cover the scratch copy too.
            old = snapshot_database_name(
                self.live, keep_current_as or f"replaced-{secrets.token_hex(6)}"
            )
            try:
                if keep_current_as is not None:
                    cur.execute(f"DROP DATABASE IF EXISTS {quote(old)}")
                self._create_database_like_live(cur, old, keep_current_as)
                self._swap(cur, snapshot, old, key)
            except BaseException:
                if set(self._tables(cur, old)) <= set(OWN_TABLES):  # failed, or undone
                    cur.execute(f"DROP DATABASE IF EXISTS {quote(old)}")
                raise
            cur.execute(f"DROP DATABASE IF EXISTS {quote(snapshot)}")
            if keep_current_as is None:
                cur.execute(f"DROP DATABASE IF EXISTS {quote(old)}")

    def drop(self, key: str) -> None:
        """Snapshot ``key``'s database, complete or not (a save or restore killed before
        it marked its copy leaves it unmarked), and what killed ones left (marked)."""
        check_key(key)
        with self._session() as cur:
            self._drop_left_over(cur)
            name = snapshot_database_name(self.live, key)
            cur.execute(f"DROP DATABASE IF EXISTS {quote(name)}")

    # -- helpers ---------------------------------------------------------------------------

    def _swap(self, cur: Any, snapshot: str, old: str, key: str) -> None:
        import pymysql

        if self.terminate_connections:
            self._end_sessions(cur)
        moves = (
            [(self.live, table, old, table) for table in self._tables(cur, self.live)]
            + [
                (snapshot, table, self.live, table)
                for table in self._tables(cur, snapshot)
                if table not in OWN_TABLES
            ]
            + [(snapshot, MARKER_TABLE, snapshot, CONSUMED_TABLE)]
        )
        if PENDING_TABLE in self._tables(cur, old):
            moves.append((old, PENDING_TABLE, old, MARKER_TABLE))
        live_objects = self._schema_objects(cur, self.live)
        self._keep_objects(cur, old, live_objects)
        cur.execute(f"SET SESSION lock_wait_timeout = {LOCK_WAIT_SECONDS}")
        dropped: list[SchemaObject] = []
        try:
            self._drop_objects(cur, live_objects, dropped)
            _rename_tables(cur, moves)
        except pymysql.err.MySQLError as err:
            self._create_objects(cur, dropped, key)  # the live tables never moved
            raise self._swap_error(cur, key, err) from err
        try:
            self._create_objects(cur, self._kept_objects(cur, snapshot), key)
        except BaseException:
            # All or nothing: the snapshot gets its tables back, the live database its own.
            self._drop_objects(cur, self._schema_objects(cur, self.live), [])
            _rename_tables(
                cur, [(to, new, source, table) for source, table, to, new in reversed(moves)]
            )
            self._create_objects(cur, live_objects, key)
            raise

    def _end_sessions(self, cur: Any) -> None:
        import pymysql

        ended = []
        for session_id, user, host, *_ in self._sessions(cur):
            # It may have ended by itself meanwhile.
            with contextlib.suppress(pymysql.err.OperationalError):
                cur.execute(f"KILL {int(session_id)}")
                ended.append(f"id {session_id} (user {user}, from {host})")
        if ended and self.progress is not None:
            self.progress(
                f"branchmig: ended {len(ended)} session(s) on {self.describe()} "
                f"(--terminate-connections): {', '.join(ended)}"
            )

    def _drop_objects(
        self, cur: Any, objects: list[SchemaObject], dropped: list[SchemaObject]
    ) -> None:
        """Drop ``objects`` from the live database, adding each to ``dropped``: events
        first (they would fire mid-swap), functions last (views call them)."""
        for obj in reversed(objects):
            cur.execute(f"DROP {obj.kind} IF EXISTS {quote(self.live)}.{quote(obj.name)}")
            dropped.insert(0, obj)

    def _swap_error(self, cur: Any, key: str, err: pymysql.err.MySQLError) -> SnapshotError:
        import pymysql

        if (
            isinstance(err, pymysql.err.OperationalError)
            and err.args
            and (err.args[0] == _LOCK_WAIT_TIMEOUT)
        ):
            named = self._named_sessions(cur)
            return SessionsBlockingError(
                f"Cannot restore snapshot {key!r} of {self.describe()}: other sessions "
                f"hold its tables in open transactions: {', '.join(named) or 'unknown'}.",
                sessions=named,
            )
        return self._error("restore", key, err)

    # -- views, routines, triggers and events ----------------------------------------------

    def _schema_objects(self, cur: Any, database: str) -> list[SchemaObject]:
        """The objects of ``database`` that cannot move with its tables, in the order they
        are created: functions and procedures, views, triggers (in firing order), events."""
        found: list[SchemaObject] = []
        cur.execute(
            "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA = %s AND ROUTINE_TYPE IN ('FUNCTION', 'PROCEDURE') "
            "ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
            (database,),
        )
        for kind, name in cur.fetchall():
            row = self._show_create(cur, kind, database, name)
            found.append(SchemaObject(kind, name, _without_definer(row[2]), row[1], None))
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s "
            "ORDER BY TABLE_NAME",
            (database,),
        )
        for (name,) in cur.fetchall():
            row = self._show_create(cur, "VIEW", database, name)
            found.append(SchemaObject("VIEW", name, _without_definer(row[1]), None, None))
        # Rebuilt from their parts rather than SHOW CREATE TRIGGER, whose FOLLOWS/PRECEDES
        # may name a trigger not created yet: creating them in firing order keeps the order.
        # A trigger lives in its table's database; asked by TRIGGER_SCHEMA, MariaDB opens
        # every database's tables, and waits on any table another session is renaming.
        cur.execute(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, "
            "ACTION_STATEMENT, SQL_MODE FROM information_schema.TRIGGERS "
            "WHERE EVENT_OBJECT_SCHEMA = %s "
            "ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
            (database,),
        )
        found += [_trigger(*row) for row in cur.fetchall()]
        cur.execute(
            "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s "
            "ORDER BY EVENT_NAME",
            (database,),
        )
        for (name,) in cur.fetchall():
            row = self._show_create(cur, "EVENT", database, name)
            found.append(SchemaObject("EVENT", name, _without_definer(row[3]), row[1], row[2]))
        return found

    def _show_create(self, cur: Any, kind: str, database: str, name: str) -> tuple[Any, ...]:
        cur.execute(f"SHOW CREATE {kind} {quote(database)}.{quote(name)}")
        row = cur.fetchone()
        statement = row[{"VIEW": 1, "EVENT": 3}.get(kind, 2)] if row else None
        if statement is None:  # a routine the user may call but not read
            raise SnapshotError(
                f"Cannot read the definition of {kind.lower()} {name!r} in {self.describe()}: "
                f"the user {self._connect_args['user']!r} may not see it. Grant it "
                "SHOW CREATE ROUTINE (or SELECT on mysql.proc), or run with --no-snapshot."
            )
        return tuple(row)

    @staticmethod
    def _keep_objects(cur: Any, database: str, objects: list[SchemaObject]) -> None:
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {quote(database)}.{quote(OBJECTS_TABLE)} ("
            "position INT PRIMARY KEY, kind VARCHAR(9) NOT NULL, name VARCHAR(64) NOT NULL, "
            "statement LONGTEXT NOT NULL, sql_mode TEXT NULL, time_zone VARCHAR(64) NULL)"
        )
        cur.execute(f"DELETE FROM {quote(database)}.{quote(OBJECTS_TABLE)}")
        if objects:
            cur.executemany(
                f"INSERT INTO {quote(database)}.{quote(OBJECTS_TABLE)} "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                [(i, *obj) for i, obj in enumerate(objects)],
            )

    @staticmethod
    def _kept_objects(cur: Any, database: str) -> list[SchemaObject]:
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME IN (%s, %s)",
            (database, OBJECTS_TABLE, TRIGGERS_TABLE),
        )
        kept = {row[0] for row in cur.fetchall()}
        if OBJECTS_TABLE in kept:
            cur.execute(
                "SELECT kind, name, statement, sql_mode, time_zone "
                f"FROM {quote(database)}.{quote(OBJECTS_TABLE)} ORDER BY position"
            )
            return [SchemaObject(*row) for row in cur.fetchall()]
        if TRIGGERS_TABLE in kept:
            cur.execute(
                "SELECT name, tbl, timing, event, statement, sql_mode "
                f"FROM {quote(database)}.{quote(TRIGGERS_TABLE)} ORDER BY position"
            )
            return [_trigger(*row) for row in cur.fetchall()]
        return []  # a snapshot saved before triggers were kept

    def _create_objects(self, cur: Any, objects: list[SchemaObject], key: str) -> None:
        """Create ``objects`` in the live database, each under its own sql_mode and time
        zone; a view that reads a view not created yet is tried again after it, and one
        that reads what no longer exists is left out, and said."""
        import pymysql

        if not objects:
            return
        cur.execute("SELECT @@SESSION.sql_mode, @@SESSION.time_zone")
        mode, zone = cur.fetchone()
        cur.execute(f"USE {quote(self.live)}")
        pending = list(objects)
        try:
            while pending:
                waiting: list[tuple[SchemaObject, pymysql.err.MySQLError]] = []
                for obj in pending:
                    cur.execute(
                        "SET SESSION sql_mode = %s, time_zone = %s",
                        (mode if obj.sql_mode is None else obj.sql_mode, obj.time_zone or zone),
                    )
                    try:
                        cur.execute(obj.statement)
                    except pymysql.err.MySQLError as err:
                        if obj.kind != "VIEW" or err.args[0] not in _MISSING_REFERENCE:
                            raise self._create_error(obj, key, err) from err
                        waiting.append((obj, err))
                if len(waiting) == len(pending):  # nothing they wait for will come
                    self._report_broken_views(waiting, key)
                    break
                pending = [obj for obj, _ in waiting]
        finally:
            cur.execute("SET SESSION sql_mode = %s, time_zone = %s", (mode, zone))

    def _report_broken_views(
        self, broken: list[tuple[SchemaObject, pymysql.err.MySQLError]], key: str
    ) -> None:
        """MariaDB keeps a view whose table was dropped but will not create one: such a
        view was already broken when it was kept, so the restore goes on without it."""
        if self.progress is None:
            return
        for obj, err in broken:
            self.progress(
                f"branchmig: view {obj.name!r} of snapshot {key!r} was not created in "
                f"{self.describe()}: {_reason(err)}. Its definition was: {obj.statement}"
            )

    def _create_error(self, obj: SchemaObject, key: str, err: Exception) -> SnapshotError:
        return SnapshotError(
            f"Cannot create {obj.kind.lower()} {obj.name!r} in {self.describe()} while "
            f"restoring snapshot {key!r}: {_reason(err)}."
        )

    def _create_database_like_live(self, cur: Any, name: str, key: str | None) -> None:
        cur.execute(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
            "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
            (self.live,),
        )
        charset, collation = cur.fetchone() or ("utf8mb4", None)
        options = f" CHARACTER SET {charset}" + (f" COLLATE {collation}" if collation else "")
        cur.execute(f"CREATE DATABASE {quote(name)}{options}")
        if key is not None:  # published (renamed to MARKER_TABLE) once complete
            marker = json.dumps({"live": self.live, "key": key}, ensure_ascii=False)
            cur.execute(
                f"CREATE TABLE {quote(name)}.{quote(PENDING_TABLE)} (id INT PRIMARY KEY) "
                "COMMENT = %s",
                (marker,),
            )

    def _drop_left_over(self, cur: Any) -> None:
        """Drop what killed saves and restores of this live database left: databases
        whose marker is still pending or already consumed (never a snapshot)."""
        cur.execute(
            "SELECT TABLE_SCHEMA, TABLE_COMMENT FROM information_schema.TABLES "
            "WHERE TABLE_NAME IN (%s, %s)",
            (PENDING_TABLE, CONSUMED_TABLE),
        )
        for schema, comment in cur.fetchall():
            try:
                live = json.loads(comment)["live"]
            except (ValueError, KeyError, TypeError):
                continue
            if live == self.live and schema != self.live:
                cur.execute(f"DROP DATABASE IF EXISTS {quote(schema)}")

    def _copy_frozen(self, cur: Any, target: str, key: str) -> None:
        """Copy the live tables, sequences and objects into ``target`` as they stand at one
        instant: no write to the live tables commits from the table definitions read to
        the last row copied (``mysql_copy``)."""
        tables = self._tables(cur, self.live, ("BASE TABLE",))
        sequences = self._tables(cur, self.live, ("SEQUENCE",))
        with self._frozen(cur, tables + sequences, key) as locked:
            self._create_tables(cur, target, tables, sequences)
            sizes = self._table_sizes(cur, self.live)
            by_size = sorted(tables, key=lambda table: -sizes.get(table, 0))
            jobs = [Job(table, tuple(self._stored_columns(cur, table))) for table in by_size]
            if locked:
                workers = mysql_copy.worker_count(cur, [sizes.get(t, 0) for t in tables])
                mysql_copy.copy_tables(self._connect, self.live, target, jobs, workers=workers)
            else:
                mysql_copy.copy_in_one_transaction(cur, self.live, target, jobs)
            self._keep_objects(cur, target, self._schema_objects(cur, self.live))

    @contextmanager
    def _frozen(self, cur: Any, tables: list[str], key: str) -> Iterator[bool]:
        """The live tables held still (``mysql_copy.lock_for_reading``); the sessions whose
        open transactions wrote them and hold it up are named, or ended with
        --terminate-connections. False when the user may not lock tables (no LOCK TABLES
        privilege): the copy is then one consistent transaction on one connection."""
        import pymysql

        lock = functools.partial(
            mysql_copy.lock_for_reading,
            self._connect,
            self.live,
            tables,
            wait_seconds=LOCK_WAIT_SECONDS,
        )
        try:
            holder = lock()
        except pymysql.err.MySQLError as err:
            if err.args and err.args[0] in mysql_copy.ACCESS_DENIED:
                yield False
                return
            if not (err.args and err.args[0] == _LOCK_WAIT_TIMEOUT):
                raise
            if not self.terminate_connections:
                named = self._named_sessions(cur)
                raise SessionsBlockingError(
                    f"Cannot save snapshot {key!r} of {self.describe()}: other sessions "
                    f"hold its tables in open transactions: {', '.join(named) or 'unknown'}.",
                    sessions=named,
                ) from err
            self._end_sessions(cur)
            holder = lock()
        try:
            yield True
        finally:
            mysql_copy.release(holder)

    def _create_tables(
        self, cur: Any, target: str, tables: list[str], sequences: list[str]
    ) -> None:
        cur.execute(f"USE {quote(target)}")
        # As mysqldump replays them: a default the server's stricter modes would refuse
        # today (a zero date) was accepted when the table was made.
        cur.execute("SET SESSION FOREIGN_KEY_CHECKS = 0, sql_mode = 'NO_AUTO_VALUE_ON_ZERO'")
        for table in tables + sequences:
            cur.execute(f"SHOW CREATE TABLE {quote(self.live)}.{quote(table)}")
            cur.execute(cur.fetchone()[1])
        for sequence in sequences:
            # The next value not handed out to any session yet, as mysqldump keeps it.
            cur.execute(
                "SELECT next_not_cached_value, cycle_count "
                f"FROM {quote(self.live)}.{quote(sequence)}"
            )
            next_value, cycles = cur.fetchone()
            cur.execute(
                f"SELECT SETVAL({quote(target)}.{quote(sequence)}, %s, 0, %s)",
                (next_value, cycles),
            )

    def _stored_columns(self, cur: Any, table: str) -> list[str]:
        cur.execute(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND EXTRA NOT LIKE %s "
            "ORDER BY ORDINAL_POSITION",
            (self.live, table, "%GENERATED%"),
        )
        return [row[0] for row in cur.fetchall()]

    def _stored(self, cur: Any) -> list[StoredSnapshot]:
        cur.execute(
            "SELECT TABLE_SCHEMA, TABLE_COMMENT FROM information_schema.TABLES "
            "WHERE TABLE_NAME = %s",
            (MARKER_TABLE,),
        )
        found = []
        for schema, comment in cur.fetchall():
            try:
                facts = json.loads(comment)
                live, key = facts["live"], facts["key"]
            except (ValueError, KeyError, TypeError):
                continue
            if (
                live == self.live
                and isinstance(key, str)
                and KEY_PATTERN.fullmatch(key)
                and schema == snapshot_database_name(self.live, key)
            ):
                found.append(StoredSnapshot(key, self.name, schema, 0))
        sizes = self._database_sizes(cur, [s.location for s in found])
        return sorted(
            (StoredSnapshot(s.key, s.backend, s.location, sizes.get(s.location, 0))
             for s in found),
            key=lambda snap: snap.key,
        )  # fmt: skip

    @staticmethod
    def _tables(cur: Any, database: str, types: Sequence[str] = MOVABLE_TABLE_TYPES) -> list[str]:
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE IN %s ORDER BY TABLE_NAME",
            (database, tuple(types)),
        )
        return [row[0] for row in cur.fetchall()]

    def _named_sessions(self, cur: Any) -> list[str]:
        return [
            f"id {sid} ({user}@{host}, {command})" for sid, user, host, command in
            self._sessions(cur)
        ]  # fmt: skip

    def _sessions(self, cur: Any) -> Sequence[tuple[Any, ...]]:
        cur.execute(
            "SELECT ID, USER, HOST, COMMAND FROM information_schema.PROCESSLIST "
            "WHERE DB = %s AND ID <> CONNECTION_ID() ORDER BY ID",
            (self.live,),
        )
        return list(cur.fetchall())

    @staticmethod
    def _database_exists(cur: Any, name: str) -> bool:
        cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
        return cur.fetchone() is not None

    @staticmethod
    def _database_size(cur: Any, name: str) -> int:
        return MySQLBackend._database_sizes(cur, [name]).get(name, 0)

    @staticmethod
    def _table_sizes(cur: Any, database: str) -> dict[str, int]:
        """Each table's size as its statistics say: enough to start the largest first."""
        cur.execute(
            "SELECT TABLE_NAME, COALESCE(DATA_LENGTH + INDEX_LENGTH, 0) "
            "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            (database,),
        )
        return {table: int(size) for table, size in cur.fetchall()}

    @staticmethod
    def _database_sizes(cur: Any, names: Sequence[str]) -> dict[str, int]:
        """Each database's size as its tables' statistics say, in one query."""
        if not names:
            return {}
        cur.execute(
            "SELECT TABLE_SCHEMA, COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) "
            "FROM information_schema.TABLES WHERE TABLE_SCHEMA IN %s GROUP BY TABLE_SCHEMA",
            (tuple(names),),
        )
        return {schema: int(size) for schema, size in cur.fetchall()}

    def _measured_files(self, database: str) -> int:
        """The bytes of ``database``'s InnoDB files now, on a connection of its own (the
        live line's thread asks): what a copy has written so far, where statistics lag by
        minutes. Raises, and the line leaves it out, where the server does not show them
        (no PROCESS privilege; MySQL 8 names the view INNODB_TABLESPACES)."""
        with contextlib.closing(self._connect()) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT COALESCE(SUM(FILE_SIZE), 0) "
                "FROM information_schema.INNODB_SYS_TABLESPACES WHERE NAME LIKE %s",
                (_file_name(database).replace("_", "\\_") + "/%",),  # letters, digits, _, @
            )
            return int(cur.fetchone()[0])

    @staticmethod
    def _analyze(cur: Any, name: str) -> None:
        """Bring the statistics of a fresh copy's tables up to date: InnoDB counts a table
        written by one INSERT … SELECT at a page or two until its background recount runs
        (a 530 MB copy read 197 MB), and the size of a snapshot is read from them. InnoDB
        counts the pages exactly and samples only the rows: milliseconds per table. The
        engine-independent statistics (a full scan) are not collected."""
        import pymysql

        tables = MySQLBackend._tables(cur, name, ("BASE TABLE",))
        if not tables:
            return
        with contextlib.suppress(pymysql.err.MySQLError):  # MySQL has no such variable
            cur.execute("SET SESSION use_stat_tables = 'NEVER'")
        cur.execute(
            "ANALYZE NO_WRITE_TO_BINLOG TABLE "
            + ", ".join(f"{quote(name)}.{quote(table)}" for table in tables)
        )
        cur.fetchall()

    def _connect(self) -> Any:
        return mysqltls.connect(**self._connect_args, autocommit=True, connect_timeout=10)

    @contextmanager
    def _session(self) -> Iterator[Any]:
        import pymysql

        try:
            conn = self._connect()
        except pymysql.err.MySQLError as err:
            raise DatabaseError(
                f"Cannot connect to MySQL at {self.masked_url}: {_reason(err)}. "
                "Check that the server runs and the URL is right."
            ) from err
        try:
            with conn.cursor() as cur:
                yield cur
        except pymysql.err.MySQLError as err:
            raise SnapshotError(f"{self.describe()}: {_reason(err)}.") from err
        finally:
            conn.close()

    def _error(self, action: str, key: str, err: Exception) -> SnapshotError:
        return SnapshotError(
            f"Cannot {action} snapshot {key!r} of {self.describe()}: {_reason(err)}."
        )


def _reason(err: Exception) -> str:
    if len(err.args) >= 2:
        return f"({err.args[0]}) {err.args[1]}"
    return str(err) or type(err).__name__


def _file_name(database: str) -> str:
    """``database`` as InnoDB names its folder: ``app-1`` is ``app@002d1``."""
    if not database.isascii():
        raise ValueError(f"{database!r}: only ASCII names are encoded here")
    return "".join(c if c.isalnum() or c == "_" else f"@{ord(c):04x}" for c in database)


def _rename_tables(cur: Any, moves: list[tuple[str, str, str, str]]) -> None:
    """Move each (database, table, to database, to table) in one statement, in order: all
    of them, or none."""
    if moves:
        cur.execute(
            "RENAME TABLE "
            + ", ".join(
                f"{quote(source)}.{quote(table)} TO {quote(to)}.{quote(new)}"
                for source, table, to, new in moves
            )
        )


def _trigger(
    name: str, table: str, timing: str, event: str, body: str, sql_mode: str
) -> SchemaObject:
    return SchemaObject(
        "TRIGGER",
        name,
        f"CREATE TRIGGER {quote(name)} {timing} {event} ON {quote(table)} FOR EACH ROW {body}",
        sql_mode,
        None,
    )


def _without_definer(statement: str) -> str:
    return _DEFINER.sub(r"\1", statement, count=1)
