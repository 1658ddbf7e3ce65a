"""PostgreSQL snapshots against the real server: template copies, rename swaps, dump fallback."""

from __future__ import annotations

import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from db_servers import (
    drop_postgres_database_and_snapshots,
    new_postgres_database,
    postgres_connection,
    url_with_database,
)
from psycopg import sql
from sqlalchemy.engine import make_url

from branchmig.errors import DatabaseError, SnapshotError
from branchmig.snapshots import SessionsBlockingError, backend_for_url
from branchmig.snapshots.postgresql import PostgreSQLBackend, snapshot_database_name

pytestmark = pytest.mark.postgres


def run(url: str, *statements: str) -> None:
    with postgres_connection(url) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def query(url: str, statement: str) -> list[tuple[object, ...]]:
    with postgres_connection(url) as conn:
        return list(conn.execute(statement).fetchall())  # type: ignore[arg-type]


def columns(url: str, table: str) -> list[object]:
    return [
        row[0]
        for row in query(
            url,
            "SELECT column_name FROM information_schema.columns "
            f"WHERE table_name = '{table}' ORDER BY ordinal_position",
        )
    ]


def tables(url: str) -> list[object]:
    return [
        r[0]
        for r in query(
            url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        )
    ]


def databases_named_like(server_url: str, live: str) -> list[object]:
    with postgres_connection(server_url) as conn:
        found = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1", (live,)
        ).fetchall()
    return [row[0] for row in found]


def with_users(url: str) -> str:
    run(
        url,
        "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text)",
        "INSERT INTO users (name, email) VALUES ('ada', 'ada@example.org'), ('bob', 'b@x.org')",
    )
    return url


def change_data_and_schema(url: str) -> None:
    run(
        url,
        "DELETE FROM users WHERE name = 'bob'",
        "ALTER TABLE users DROP COLUMN email",
        "CREATE TABLE posts (id serial PRIMARY KEY, title text)",
        "INSERT INTO posts (title) VALUES ('hello')",
    )


def assert_original(url: str) -> None:
    assert tables(url) == ["users"]
    assert columns(url, "users") == ["id", "name", "email"]
    assert query(url, "SELECT name, email FROM users ORDER BY id") == [
        ("ada", "ada@example.org"),
        ("bob", "b@x.org"),
    ]


@pytest.fixture
def db_with_users(fresh_postgres_url: str) -> str:
    return with_users(fresh_postgres_url)


def backend(url: str, tmp_path: Path, **options: bool) -> PostgreSQLBackend:
    made = backend_for_url(url, store_dir=tmp_path / "store", **options)
    assert isinstance(made, PostgreSQLBackend)
    return made


def test_restore_brings_back_data_and_schema_by_renaming(
    db_with_users: str, postgres_server_url: str, tmp_path: Path
) -> None:
    snaps = backend(db_with_users, tmp_path)
    live = snaps.live
    saved = snaps.save("feature1")
    assert saved.location == f"{live}__bm_feature1"
    assert saved.size > 1_000_000 and saved.backend == "postgresql"
    change_data_and_schema(db_with_users)

    snaps.restore("feature1")

    assert_original(db_with_users)
    assert not snaps.exists("feature1")
    assert databases_named_like(postgres_server_url, live) == [live]  # nothing left behind
    assert not (tmp_path / "store").exists()  # no files needed


def test_keep_current_as_keeps_the_replaced_database(db_with_users: str, tmp_path: Path) -> None:
    snaps = backend(db_with_users, tmp_path)
    snaps.save("main")
    change_data_and_schema(db_with_users)

    snaps.restore("main", keep_current_as="feature1")

    assert_original(db_with_users)
    assert [s.key for s in snaps.stored()] == ["feature1"]
    snaps.restore("feature1")
    assert tables(db_with_users) == ["posts", "users"]
    assert columns(db_with_users, "users") == ["id", "name"]
    assert snaps.stored() == []


def test_stored_drop_and_exists_are_exact_per_live_database(
    db_with_users: str, fresh_postgres_url: str, tmp_path: Path
) -> None:
    snaps = backend(db_with_users, tmp_path)
    # A database whose name extends ours is another live database, not one of our snapshots.
    lookalike = f"{snaps.live}__bm_b"
    other_url = url_with_database(db_with_users, lookalike)
    run(fresh_postgres_url, f'CREATE DATABASE "{lookalike}"')
    try:
        backend(other_url, tmp_path).save("x")
        snaps.save("b-2")
        snaps.save("a_1")
        snaps.save("a_1")  # overwrite

        assert [s.key for s in snaps.stored()] == ["a_1", "b-2"]
        assert [s.key for s in backend(other_url, tmp_path).stored()] == ["x"]
        assert snaps.exists("a_1") and not snaps.exists("x")
        snaps.drop("a_1")
        snaps.drop("a_1")  # absent: no error
        assert [s.key for s in snaps.stored()] == ["b-2"]
        assert snaps.live_size() > 0
    finally:
        drop_postgres_database_and_snapshots(fresh_postgres_url, lookalike)


def test_an_open_session_blocks_and_is_named_until_terminate_connections(
    db_with_users: str, tmp_path: Path
) -> None:
    snaps = backend(db_with_users, tmp_path)
    snaps.save("before")
    change_data_and_schema(db_with_users)
    with postgres_connection(db_with_users, application_name="flask-run") as held:
        pid = held.info.backend_pid
        with pytest.raises(SessionsBlockingError) as caught:
            snaps.restore("before")
        message = str(caught.value)
        assert f"1 other session is connected: pid {pid} (flask-run, from 127.0.0.1)" in message
        assert caught.value.sessions == [f"pid {pid} (flask-run, from 127.0.0.1)"]
        assert "--terminate-connections" not in message  # the command line's advice
        assert snaps.exists("before")
        with pytest.raises(SessionsBlockingError, match=f"pid {pid}"):
            snaps.save("other")

        backend(db_with_users, tmp_path, terminate_connections=True).restore("before")

        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")
    assert_original(db_with_users)


@pytest.fixture
def db_with_quotes_and_spaces(postgres_server_url: str) -> Iterator[str]:
    name = f"""bm test "quoted" 'it''s' {uuid.uuid4().hex[:6]}"""
    with new_postgres_database(postgres_server_url, name) as url:
        yield url


def test_names_with_quotes_and_spaces(db_with_quotes_and_spaces: str, tmp_path: Path) -> None:
    url = with_users(db_with_quotes_and_spaces)
    snaps = backend(url, tmp_path)
    assert '"quoted"' in snaps.live
    saved = snaps.save("k")
    assert saved.location == f"{snaps.live}__bm_k"
    change_data_and_schema(url)
    snaps.restore("k", keep_current_as="changed")
    assert_original(url)
    assert [s.key for s in snaps.stored()] == ["changed"]


def test_long_names_are_hashed_to_63_bytes_and_still_listed(
    postgres_server_url: str, tmp_path: Path
) -> None:
    name = f"bm_test_long_{uuid.uuid4().hex[:8]}_" + "é" * 20  # 62 bytes
    key = "k" * 40
    assert len(snapshot_database_name(name, key).encode()) <= 63
    try:
        with new_postgres_database(postgres_server_url, name) as empty:
            url = with_users(empty)
            snaps = backend(url, tmp_path)
            assert snaps.save(key).location == snapshot_database_name(name, key)
            assert [s.key for s in snaps.stored()] == [key]
            change_data_and_schema(url)
            snaps.restore(key)
            assert_original(url)
    finally:
        with postgres_connection(postgres_server_url) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {}").format(
                    sql.Identifier(snapshot_database_name(name, key))
                )
            )


@contextmanager
def new_role(server_url: str, prefix: str, options: str = "LOGIN") -> Iterator[str]:
    role = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with postgres_connection(server_url) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} " + options).format(sql.Identifier(role)))
    try:
        yield role
    finally:
        with postgres_connection(server_url) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def db_owned_by_role_without_createdb(postgres_server_url: str) -> Iterator[str]:
    with new_role(postgres_server_url, "bm_nocreate") as role:
        with postgres_connection(postgres_server_url) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(role), sql.Identifier(role)
                )
            )
        url = make_url(postgres_server_url).set(username=role, database=role)
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            drop_postgres_database_and_snapshots(postgres_server_url, role)


def test_a_role_without_createdb_falls_back_to_pg_dump_and_pg_restore(
    db_owned_by_role_without_createdb: str, tmp_path: Path
) -> None:
    url = with_users(db_owned_by_role_without_createdb)
    run(
        url, "CREATE SCHEMA extra", "CREATE TABLE extra.t (x int)", "CREATE TYPE mood AS ENUM ('a')"
    )
    snaps = backend(url, tmp_path)
    saved = snaps.save("before")
    assert saved.location.endswith("__before.dump")
    assert stat.S_IMODE(Path(saved.location).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "store").stat().st_mode) == 0o700
    change_data_and_schema(url)
    run(url, "DROP SCHEMA extra CASCADE", "CREATE SCHEMA later", "DROP TYPE mood")

    snaps.restore("before", keep_current_as="after")

    assert_original(url)
    assert query(url, "SELECT nspname FROM pg_namespace WHERE nspname IN ('extra', 'later')") == [
        ("extra",)
    ]
    assert [s.key for s in snaps.stored()] == ["after"]
    assert not Path(saved.location).exists()
    snaps.restore("after")
    assert tables(url) == ["posts", "users"]
    assert snaps.stored() == []


@pytest.fixture
def db_with_its_own_owner_privileges_and_settings(
    postgres_server_url: str, fresh_postgres_url: str
) -> Iterator[tuple[str, str, str]]:
    """(live URL, owner, reader): owned by a role that may create databases, CONNECT
    granted to ``reader`` only, a connection limit, and settings for all and for reader."""
    live = str(make_url(fresh_postgres_url).database)
    with (
        new_role(postgres_server_url, "bm_owner", "LOGIN CREATEDB") as owner,
        new_role(postgres_server_url, "bm_reader") as reader,
    ):
        db, o, r = sql.Identifier(live), sql.Identifier(owner), sql.Identifier(reader)
        with postgres_connection(postgres_server_url) as conn:
            for statement in (
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, o),
                sql.SQL("ALTER DATABASE {} CONNECTION LIMIT 50").format(db),
                sql.SQL("ALTER DATABASE {} SET timezone TO 'Asia/Tokyo'").format(db),
                sql.SQL(
                    """ALTER DATABASE {} SET search_path TO "$user", "my app", public"""
                ).format(db),
                sql.SQL("ALTER ROLE {} IN DATABASE {} SET work_mem TO '8MB'").format(r, db),
                sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db),
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {} WITH GRANT OPTION").format(db, r),
            ):
                conn.execute(statement)
        yield fresh_postgres_url, owner, reader
        # Before the roles go: the database and its snapshots name them.
        drop_postgres_database_and_snapshots(postgres_server_url, live)


def database_attributes(server_url: str, name: str) -> tuple[object, ...]:
    with postgres_connection(server_url) as conn:
        row = conn.execute(
            """
            SELECT pg_get_userbyid(d.datdba), d.datconnlimit,
                   (SELECT array_agg(a::text ORDER BY a::text) FROM unnest(d.datacl) a),
                   (SELECT array_agg(coalesce(pg_get_userbyid(nullif(s.setrole, 0)), '*')
                                     || ':' || array_to_string(s.setconfig, ';') ORDER BY 1)
                    FROM pg_db_role_setting s WHERE s.setdatabase = d.oid)
            FROM pg_database d WHERE d.datname = %s
            """,
            (name,),
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_a_restored_database_keeps_its_owner_privileges_and_settings(
    db_with_its_own_owner_privileges_and_settings: tuple[str, str, str],
    postgres_server_url: str,
    tmp_path: Path,
) -> None:
    url, owner, reader = db_with_its_own_owner_privileges_and_settings
    live = str(make_url(url).database)
    before = database_attributes(postgres_server_url, live)
    assert before[0] == owner and before[1] == 50

    snaps = backend(url, tmp_path)  # as the superuser: the copies are its own at first
    snaps.save("main")
    snaps.restore("main", keep_current_as="old")

    assert database_attributes(postgres_server_url, live) == before
    assert database_attributes(postgres_server_url, snapshot_database_name(live, "old")) == before
    as_reader = make_url(url).set(username=reader).render_as_string(hide_password=False)
    with postgres_connection(as_reader) as conn:
        assert conn.execute("SHOW search_path").fetchone() == ('"$user", "my app", public',)
        assert conn.execute("SHOW work_mem").fetchone() == ("8MB",)


def test_the_owner_saves_what_it_may_and_says_what_it_left_out(
    db_with_its_own_owner_privileges_and_settings: tuple[str, str, str],
    postgres_server_url: str,
    tmp_path: Path,
) -> None:
    url, owner, reader = db_with_its_own_owner_privileges_and_settings
    live = str(make_url(url).database)
    said: list[str] = []
    as_owner = make_url(url).set(username=owner).render_as_string(hide_password=False)
    snaps = backend_for_url(as_owner, store_dir=tmp_path / "store", progress=said.append)

    snaps.save("main")

    saved = database_attributes(postgres_server_url, snapshot_database_name(live, "main"))
    before = database_attributes(postgres_server_url, live)
    assert saved[:3] == before[:3]
    assert saved[3] == ['*:TimeZone=Asia/Tokyo;search_path="$user", "my app", public']
    assert said == [
        f"branchmig: the snapshot leaves out the settings of role {reader!r} in {live!r} "
        "(work_mem=8MB): only a superuser may copy them"
    ]


def test_an_unreachable_server_is_a_database_error_with_the_password_masked(
    tmp_path: Path,
) -> None:
    snaps = backend("postgresql+psycopg://app:s3cret@127.0.0.1:1/app", tmp_path)
    with pytest.raises(DatabaseError) as caught:
        snaps.stored()
    message = str(caught.value)
    assert message.startswith("Cannot connect to PostgreSQL at postgresql+psycopg://app:***@")
    assert "s3cret" not in message
    assert snaps.describe() == "PostgreSQL database 'app' on 127.0.0.1:1"


def test_missing_snapshot_and_missing_live_database_say_so(
    postgres_server_url: str, tmp_path: Path
) -> None:
    url = url_with_database(postgres_server_url, f"bm_test_absent_{uuid.uuid4().hex[:8]}")
    snaps = backend(url, tmp_path)
    with pytest.raises(SnapshotError, match="There is no snapshot 'x' of PostgreSQL database"):
        snaps.restore("x")
    with pytest.raises(SnapshotError, match="does not exist"):
        snaps.save("x")
