"""MySQL/MariaDB snapshots against the real server: table copies and one RENAME TABLE swap."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymysql
import pytest
from db_servers import mysql_connection
from sqlalchemy.engine import make_url

from branchmig.errors import DatabaseError, SnapshotError
from branchmig.snapshots import SessionsBlockingError, backend_for_url
from branchmig.snapshots.mysql import MySQLBackend, snapshot_database_name

pytestmark = pytest.mark.mysql


def run(url: str, *statements: str) -> None:
    with mysql_connection(url, database=make_url(url).database) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def query(url: str, statement: str) -> list[tuple[Any, ...]]:
    with mysql_connection(url, database=make_url(url).database) as conn, conn.cursor() as cur:
        cur.execute(statement)
        return list(cur.fetchall())


def tables(url: str) -> list[str]:
    return sorted(row[0] for row in query(url, "SHOW TABLES"))


def columns(url: str, table: str) -> list[str]:
    return [row[0] for row in query(url, f"SHOW COLUMNS FROM `{table}`")]


def foreign_keys(url: str) -> list[tuple[Any, ...]]:
    return query(
        url,
        "SELECT TABLE_NAME, REFERENCED_TABLE_SCHEMA = DATABASE(), REFERENCED_TABLE_NAME "
        "FROM information_schema.KEY_COLUMN_USAGE "
        "WHERE TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL",
    )


@pytest.fixture
def db_with_users_and_posts(fresh_mysql_url: str) -> str:
    run(
        fresh_mysql_url,
        "CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL, "
        "email VARCHAR(80), name_upper VARCHAR(50) AS (UPPER(name)) VIRTUAL) ENGINE=InnoDB",
        "CREATE TABLE posts (id INT AUTO_INCREMENT PRIMARY KEY, user_id INT NOT NULL, "
        "title VARCHAR(80), FOREIGN KEY (user_id) REFERENCES users (id)) ENGINE=InnoDB",
        "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO')",
        "INSERT INTO users (id, name, email) VALUES (0, 'root', NULL), (1, 'ada', 'a@x.org'), "
        "(2, 'bob', 'b@x.org')",
        "INSERT INTO posts (user_id, title) VALUES (1, 'hello'), (2, 'world')",
    )
    return fresh_mysql_url


def change_data_and_schema(url: str) -> None:
    run(
        url,
        "DELETE FROM posts WHERE user_id = 2",
        "DELETE FROM users WHERE name = 'bob'",
        "ALTER TABLE users DROP COLUMN email",
        "CREATE TABLE tags (id INT PRIMARY KEY)",
        "INSERT INTO tags VALUES (7)",
    )


def assert_original(url: str) -> None:
    assert tables(url) == ["posts", "users"]
    assert columns(url, "users") == ["id", "name", "email", "name_upper"]
    assert query(url, "SELECT id, name, email, name_upper FROM users ORDER BY id") == [
        (0, "root", None, "ROOT"),
        (1, "ada", "a@x.org", "ADA"),
        (2, "bob", "b@x.org", "BOB"),
    ]
    assert query(url, "SELECT user_id, title FROM posts ORDER BY id") == [
        (1, "hello"),
        (2, "world"),
    ]
    assert sorted(foreign_keys(url)) == [("posts", 1, "users")]
    with pytest.raises(pymysql.err.IntegrityError):
        run(url, "INSERT INTO posts (user_id, title) VALUES (99, 'orphan')")


def backend(url: str, tmp_path: Path, **options: bool) -> MySQLBackend:
    made = backend_for_url(url, store_dir=tmp_path / "store", **options)
    assert isinstance(made, MySQLBackend)
    return made


def schemas_named_like(url: str, live: str) -> list[str]:
    return sorted(
        row[0]
        for row in query(url, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
        if row[0].startswith(live)
    )


def test_round_trip_with_foreign_keys(db_with_users_and_posts: str, tmp_path: Path) -> None:
    url = db_with_users_and_posts
    snaps = backend(url, tmp_path)
    saved = snaps.save("feature1")
    assert saved.location == f"{snaps.live}__bm_feature1" and saved.backend == "mysql"
    change_data_and_schema(url)

    snaps.restore("feature1")

    assert_original(url)
    assert not snaps.exists("feature1")
    assert schemas_named_like(url, snaps.live) == [snaps.live]
    run(url, "INSERT INTO users (name) VALUES ('carol')")  # AUTO_INCREMENT carried over
    assert query(url, "SELECT id FROM users WHERE name = 'carol'") == [(3,)]


def test_keep_current_as_keeps_the_replaced_tables(
    db_with_users_and_posts: str, tmp_path: Path
) -> None:
    url = db_with_users_and_posts
    snaps = backend(url, tmp_path)
    snaps.save("main")
    change_data_and_schema(url)

    snaps.restore("main", keep_current_as="feature1")

    assert_original(url)
    assert [s.key for s in snaps.stored()] == ["feature1"]
    snaps.restore("feature1")
    assert tables(url) == ["posts", "tags", "users"]
    assert columns(url, "users") == ["id", "name", "name_upper"]
    assert sorted(foreign_keys(url)) == [("posts", 1, "users")]
    assert snaps.stored() == []


def triggers(url: str) -> list[tuple[Any, ...]]:
    return query(
        url,
        "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY TRIGGER_NAME",
    )


def test_triggers_go_with_their_tables(db_with_users_and_posts: str, tmp_path: Path) -> None:
    url = db_with_users_and_posts
    run(
        url,
        "CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(80))",
        "CREATE TRIGGER users_added AFTER INSERT ON users FOR EACH ROW "
        "INSERT INTO audit (what) VALUES (CONCAT('added ', NEW.name))",
        "CREATE TRIGGER users_named BEFORE INSERT ON users FOR EACH ROW "
        "SET NEW.name = TRIM(NEW.name)",
    )
    snaps = backend(url, tmp_path)
    snaps.save("main")
    run(
        url,
        "DROP TRIGGER users_added",
        "CREATE TRIGGER posts_titled BEFORE INSERT ON posts FOR EACH ROW "
        "SET NEW.title = UPPER(NEW.title)",
    )

    snaps.restore("main", keep_current_as="feature1")

    assert triggers(url) == [("users_added", "users"), ("users_named", "users")]
    run(url, "INSERT INTO users (name) VALUES ('  carol ')")
    assert query(url, "SELECT what FROM audit") == [("added carol",)]
    snaps.restore("feature1")  # the replaced tables kept their triggers too
    assert triggers(url) == [("posts_titled", "posts"), ("users_named", "users")]
    assert query(url, "SELECT what FROM audit") == []


def schema_objects(url: str) -> list[tuple[Any, ...]]:
    return query(
        url,
        "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES "
        "WHERE ROUTINE_SCHEMA = DATABASE() "
        "UNION ALL SELECT 'VIEW', TABLE_NAME FROM information_schema.VIEWS "
        "WHERE TABLE_SCHEMA = DATABASE() "
        "UNION ALL SELECT 'EVENT', EVENT_NAME FROM information_schema.EVENTS "
        "WHERE EVENT_SCHEMA = DATABASE() ORDER BY 1, 2",
    )


def test_views_routines_and_events_go_with_their_snapshot(
    db_with_users_and_posts: str, tmp_path: Path
) -> None:
    url = db_with_users_and_posts
    run(
        url,
        "CREATE FUNCTION shout(x VARCHAR(50)) RETURNS VARCHAR(52) DETERMINISTIC "
        "RETURN CONCAT(UPPER(x), '!')",
        # Named so that the view a view reads is listed after it: created on a second try.
        "CREATE VIEW b_authors AS SELECT id, shout(name) AS loud FROM users",
        "CREATE VIEW a_loud_posts AS SELECT p.title, a.loud FROM posts p "
        "JOIN b_authors a ON a.id = p.user_id",
        "CREATE PROCEDURE add_user(IN who VARCHAR(50)) BEGIN "
        "INSERT INTO users (name) VALUES (who); END",
        "CREATE EVENT tidy ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM posts WHERE id < 0",
    )
    main_objects = schema_objects(url)
    snaps = backend(url, tmp_path)
    snaps.save("main")
    run(
        url,
        "DROP VIEW a_loud_posts",
        "DROP VIEW b_authors",
        "DROP FUNCTION shout",
        "DROP EVENT tidy",
        "CREATE VIEW named AS SELECT name FROM users",
    )

    snaps.restore("main", keep_current_as="feature1")

    assert schema_objects(url) == main_objects
    assert query(url, "SELECT title, loud FROM a_loud_posts ORDER BY title") == [
        ("hello", "ADA!"),
        ("world", "BOB!"),
    ]
    run(url, "CALL add_user('carol')")
    assert query(url, "SELECT loud FROM b_authors WHERE id = 3") == [("CAROL!",)]
    snaps.restore("feature1")  # the replaced database kept its own
    assert schema_objects(url) == [("PROCEDURE", "add_user"), ("VIEW", "named")]
    assert query(url, "SELECT name FROM named ORDER BY name") == [("ada",), ("bob",), ("root",)]


def test_a_view_broken_before_the_save_is_left_out_and_named(
    db_with_users_and_posts: str, tmp_path: Path
) -> None:
    url = db_with_users_and_posts
    run(
        url,
        "CREATE TABLE gone (id INT)",
        "CREATE VIEW broken AS SELECT id FROM gone",
        "CREATE VIEW fine AS SELECT name FROM users",
        "DROP TABLE gone",
    )
    said: list[str] = []
    snaps = backend_for_url(url, store_dir=tmp_path / "store", progress=said.append)
    snaps.save("main")
    change_data_and_schema(url)

    snaps.restore("main")

    assert schema_objects(url) == [("VIEW", "fine")]
    assert query(url, "SELECT name FROM fine ORDER BY name") == [("ada",), ("bob",), ("root",)]
    said = [line for line in said if not line.startswith("saved ")]  # a slow machine's
    assert len(said) == 1 and said[0].startswith(
        f"branchmig: view 'broken' of snapshot 'main' was not created in MySQL database "
        f"{snaps.live!r}"
    )
    assert "Its definition was: CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW" in said[0]
    assert "`broken` AS select" in said[0] and "DEFINER=" not in said[0]


def test_an_object_the_server_refuses_undoes_the_whole_restore(
    db_with_users_and_posts: str, tmp_path: Path
) -> None:
    url = db_with_users_and_posts
    run(url, "CREATE VIEW named AS SELECT name FROM users")
    snaps = backend(url, tmp_path)
    snaps.save("main")
    change_data_and_schema(url)
    run(url, "CREATE VIEW tag_ids AS SELECT id FROM tags")
    # As a server with binary logging refuses a function not declared DETERMINISTIC from a
    # user without SUPER, after the tables have moved.
    kept = f"`{snaps.live}__bm_main`.`_branchmig_objects`"
    run(url, f"INSERT INTO {kept} VALUES (9, 'FUNCTION', 'refused', 'CREATE FUNCTION', NULL, NULL)")

    def seen() -> tuple[object, ...]:
        rows = query(url, "SELECT id FROM tag_ids")
        return tables(url), columns(url, "users"), schema_objects(url), rows

    before = seen()

    with pytest.raises(SnapshotError, match="Cannot create function 'refused' in MySQL database"):
        snaps.restore("main", keep_current_as="feature1")

    assert seen() == before
    assert [s.key for s in snaps.stored()] == ["main"]
    run(url, f"DELETE FROM {kept} WHERE name = 'refused'")
    snaps.restore("main", keep_current_as="feature1")
    assert schema_objects(url) == [("VIEW", "named")]
    assert columns(url, "users") == ["id", "name", "email", "name_upper"]


def test_sequences_keep_their_next_value(fresh_mysql_url: str, tmp_path: Path) -> None:
    url = fresh_mysql_url
    run(url, "CREATE SEQUENCE ticket START WITH 100 CACHE 0", "SELECT NEXTVAL(ticket)")
    snaps = backend(url, tmp_path)
    snaps.save("main")
    run(url, "SELECT NEXTVAL(ticket)", "SELECT NEXTVAL(ticket)")

    snaps.restore("main", keep_current_as="feature1")

    assert query(url, "SELECT NEXTVAL(ticket)") == [(101,)]
    snaps.restore("feature1")
    assert query(url, "SELECT NEXTVAL(ticket)") == [(103,)]


def test_a_snapshot_that_kept_only_its_triggers_still_restores_them(
    db_with_users_and_posts: str, tmp_path: Path
) -> None:
    url = db_with_users_and_posts
    snaps = backend(url, tmp_path)
    snaps.save("main")
    # The layout of snapshots saved before views and routines were kept.
    run(
        url,
        f"DROP TABLE `{snaps.live}__bm_main`.`_branchmig_objects`",
        f"CREATE TABLE `{snaps.live}__bm_main`.`_branchmig_triggers` ("
        "position INT PRIMARY KEY, name VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL, "
        "timing VARCHAR(6) NOT NULL, event VARCHAR(6) NOT NULL, "
        "statement LONGTEXT NOT NULL, sql_mode TEXT NOT NULL)",
        f"INSERT INTO `{snaps.live}__bm_main`.`_branchmig_triggers` VALUES "
        "(0, 'users_named', 'users', 'BEFORE', 'INSERT', 'SET NEW.name = TRIM(NEW.name)', '')",
    )

    snaps.restore("main")

    assert triggers(url) == [("users_named", "users")]
    assert tables(url) == ["posts", "users"]


@pytest.fixture
def short_lock_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    import branchmig.snapshots.mysql as mysql_backend

    monkeypatch.setattr(mysql_backend, "LOCK_WAIT_SECONDS", 1)


@contextmanager
def users_held_open(url: str) -> Iterator[Any]:
    """A session whose open transaction holds a metadata lock on ``users`` until it ends."""
    with mysql_connection(url, database=make_url(url).database) as held:
        held.autocommit(False)
        with held.cursor() as cur:
            cur.execute("SELECT count(*) FROM users")
        yield held
        with contextlib.suppress(pymysql.err.MySQLError):  # it may have been ended
            held.rollback()


@pytest.mark.usefixtures("short_lock_wait")
def test_a_failed_swap_puts_the_live_triggers_views_and_routines_back(
    db_with_users_and_posts: str, tmp_path: Path
) -> None:
    url = db_with_users_and_posts
    snaps = backend(url, tmp_path)
    snaps.save("main")
    run(
        url,
        "CREATE TRIGGER posts_titled BEFORE INSERT ON posts FOR EACH ROW "
        "SET NEW.title = UPPER(NEW.title)",
        "CREATE TRIGGER users_named BEFORE INSERT ON users FOR EACH ROW "
        "SET NEW.name = TRIM(NEW.name)",
        "CREATE FUNCTION shout(x VARCHAR(50)) RETURNS VARCHAR(52) DETERMINISTIC "
        "RETURN CONCAT(UPPER(x), '!')",
        "CREATE VIEW authors AS SELECT shout(name) AS loud FROM users",
    )
    with users_held_open(url), pytest.raises(SessionsBlockingError):
        snaps.restore("main")
    assert triggers(url) == [("posts_titled", "posts"), ("users_named", "users")]
    assert schema_objects(url) == [("FUNCTION", "shout"), ("VIEW", "authors")]
    assert query(url, "SELECT count(*) FROM authors") == [(3,)]
    assert snaps.exists("main")


def test_stored_drop_and_exists_are_exact(
    db_with_users_and_posts: str, mysql_server_url: str, tmp_path: Path
) -> None:
    snaps = backend(db_with_users_and_posts, tmp_path)
    snaps.save("b-2")
    snaps.save("a_1")
    snaps.save("a_1")  # overwrite
    assert [s.key for s in snaps.stored()] == ["a_1", "b-2"]
    assert all(s.size > 0 for s in snaps.stored())
    assert snaps.exists("b-2") and not snaps.exists("c")
    snaps.drop("a_1")
    snaps.drop("a_1")
    assert [s.key for s in snaps.stored()] == ["b-2"]
    assert snaps.live_size() > 0
    assert len(snapshot_database_name("x" * 64, "k" * 40)) == 64


@pytest.mark.usefixtures("short_lock_wait")
def test_an_open_transaction_blocks_the_swap_until_terminate_connections(
    db_with_users_and_posts: str, tmp_path: Path
) -> None:
    url = db_with_users_and_posts
    snaps = backend(url, tmp_path)
    snaps.save("before")
    change_data_and_schema(url)
    with users_held_open(url) as held:
        with pytest.raises(SessionsBlockingError, match=f"id {held.thread_id()} "):
            snaps.restore("before")
        assert snaps.exists("before")
        said: list[str] = []
        ending = backend(url, tmp_path, terminate_connections=True)
        ending.progress = said.append
        ending.restore("before")
        # The sessions it ends are named (issue 24).
        assert [
            line
            for line in said
            if "ended 1 session(s)" in line and f"id {held.thread_id()} (user root, from " in line
        ], said
    assert_original(url)


def test_a_concurrent_writer_does_not_break_the_consistent_copy(
    db_with_users_and_posts: str, tmp_path: Path
) -> None:
    url = db_with_users_and_posts
    snaps = backend(url, tmp_path)
    stop = threading.Event()

    def write() -> None:
        with mysql_connection(url, database=make_url(url).database) as conn:
            while not stop.is_set():
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO users (name) VALUES ('w')")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        snaps.save("busy")
    finally:
        stop.set()
        writer.join()
    snaps.restore("busy")
    assert query(url, "SELECT count(*) FROM posts") == [(2,)]


def test_missing_snapshot_and_unreachable_server(tmp_path: Path, fresh_mysql_url: str) -> None:
    with pytest.raises(SnapshotError, match="There is no snapshot 'x' of MySQL database"):
        backend(fresh_mysql_url, tmp_path).restore("x")
    unreachable = backend("mysql+pymysql://app:s3cret@127.0.0.1:1/app", tmp_path)
    with pytest.raises(DatabaseError) as caught:
        unreachable.save("x")
    assert str(caught.value).startswith("Cannot connect to MySQL at mysql+pymysql://app:***@")
    assert "s3cret" not in str(caught.value)


def test_a_snapshot_s_size_is_measured_from_the_fresh_copy(
    fresh_mysql_url: str, tmp_path: Path
) -> None:
    """Issue 24: InnoDB's statistics of a table just filled by INSERT … SELECT say a page
    or two; the size saved, listed and put on the progress line is the copy's own."""
    url = fresh_mysql_url
    run(url, "CREATE TABLE filler (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(1000))")
    with mysql_connection(url, database=make_url(url).database) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO filler (v) VALUES (%s)", [("x" * 900,)] * 4000)
    snaps = backend(url, tmp_path)
    stored = snaps.save("sized")
    inserted = 4000 * 900
    assert inserted <= stored.size < 3 * inserted
    assert [s.size for s in snaps.stored() if s.key == "sized"] == [stored.size]
