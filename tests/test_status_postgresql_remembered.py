"""``status`` and ``snapshot list`` on PostgreSQL read the database env.py gave last time
without loading Alembic or running env.py (one ``psql`` run for heads, snapshots and
verify's leftovers), say exactly what the full way says, and go the full way again as
soon as anything env.py reads changes: env.py, the ini's URL, an environment variable it
read (issue 24, item 4). env.py logs each run, to tell which way was taken."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from db_servers import new_postgres_database, postgres_connection
from e2e_projects import BIN, Project, make_seed_project, set_alembic_url
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from branchmig.snapshots.folder import SnapshotFolder
from branchmig.snapshots.pgsurvey import Target, marker, snapshot_database_name, survey
from branchmig.snapshots.postgresql import PostgreSQLBackend

pytestmark = pytest.mark.postgres

LOGGING = """
import os as _os
with open(_os.path.join(_os.path.dirname(__file__), "..", "envpy.log"), "a") as _log:
    _log.write("ran\\n")
"""
# The variable's name is put together at run time: no reading of env.py's text finds it,
# only watching what env.py reads does.
FROM_ENVIRONMENT = """
_url = _os.environ.get("H4" + "_STATUS_DB_URL")
if _url:
    config.set_main_option("sqlalchemy.url", _url.replace("%", "%%"))
"""


def _env_py(p: Project) -> Path:
    return p.root / "alembic" / "env.py"


def _log_env_py_runs(p: Project, extra: str = "") -> None:
    text = _env_py(p).read_text()
    anchor = "config = context.config\n"
    _env_py(p).write_text(text.replace(anchor, anchor + LOGGING + extra, 1))
    with open(p.root / ".git" / "info" / "exclude", "a") as exclude:
        exclude.write("envpy.log\n")


def runs(p: Project) -> int:
    log = p.root / "envpy.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def _memo(p: Project) -> dict[str, object] | None:
    path = p.state_dir / "remembered" / "-main-.json"
    return json.loads(path.read_text()) if path.exists() else None


def _forget(p: Project) -> None:
    (p.state_dir / "remembered" / "-main-.json").unlink(missing_ok=True)


@pytest.fixture
def pg_feature2_with_snapshot(
    alembic_template: Path, tmp_path: Path, fresh_postgres_url: str
) -> Project:
    """The seed project on a new PostgreSQL database at feature2, feature1's rows kept as
    its snapshot, a named save point beside it, env.py logging its runs (uncommitted: no
    move runs in these tests)."""
    p = make_seed_project(
        alembic_template, tmp_path / "project", kind="alembic", url=fresh_postgres_url
    )
    p.ok("sync")
    p.ok("switch", "feature1")
    p.ok("switch", "feature2")
    p.ok("snapshot", "save", "before-experiment")
    _log_env_py_runs(p, FROM_ENVIRONMENT)
    return p


@pytest.fixture
def other_postgres_url(postgres_server_url: str) -> Iterator[str]:
    name = f"h4_status_other_{os.getpid()}_{os.urandom(3).hex()}"
    with new_postgres_database(postgres_server_url, name) as url:
        yield url


# A snapshot database's size may grow by a few pages between two readings (autovacuum
# gives its tables their free-space and visibility maps in its own time): the two ways
# of reading must agree on it to within that.
PAGES = 16 * 8192


def _same(said: str, expected: str) -> bool:
    """Two JSON answers alike, the snapshots' sizes to within ``PAGES``."""
    a, b = json.loads(said), json.loads(expected)
    for x, y in zip(a.get("snapshots", []), b.get("snapshots", []), strict=False):
        if abs(x["size"] - y["size"]) <= PAGES:
            x["size"] = y["size"]
    return bool(a == b)


def test_a_remembered_postgres_status_runs_no_env_py_and_says_the_same(
    pg_feature2_with_snapshot: Project,
) -> None:
    p = pg_feature2_with_snapshot
    full = p.ok("status").stdout, p.ok("status", "--json").stdout
    full_list = p.ok("snapshot", "list", "--json").stdout
    assert runs(p) == 1  # the first status ran env.py and remembered; then no more
    memo = _memo(p)
    assert memo is not None and memo["kind"] == "postgresql"
    assert "H4_STATUS_DB_URL" in memo["environ"]  # type: ignore[operator]
    assert p.ok("status").stdout == full[0]
    assert _same(p.ok("status", "--json").stdout, full[1])
    assert _same(p.ok("snapshot", "list", "--json").stdout, full_list)
    assert runs(p) == 1
    assert len(json.loads(full_list)["snapshots"]) >= 2  # a copy on the server each
    _forget(p)
    assert p.ok("status").stdout == full[0]
    assert _same(p.ok("status", "--json").stdout, full[1])
    assert runs(p) == 2


def test_the_heads_are_read_each_time(pg_feature2_with_snapshot: Project) -> None:
    p = pg_feature2_with_snapshot
    p.ok("status")
    proc = p.run(str(BIN / "alembic"), "downgrade", "-1")
    assert proc.returncode == 0, proc.stderr
    before = runs(p)
    data = p.status()
    assert runs(p) == before  # plain Alembic moved it: the heads are read, not remembered
    assert data["pending"] and data["db_heads"] != data["code_heads"]


def test_an_edited_env_py_is_run_again(pg_feature2_with_snapshot: Project) -> None:
    p = pg_feature2_with_snapshot
    p.ok("status")
    before = runs(p)
    _env_py(p).write_text(_env_py(p).read_text() + "\n# edited\n")
    p.ok("status")
    assert runs(p) == before + 1


def test_status_follows_the_ini_url(
    pg_feature2_with_snapshot: Project, other_postgres_url: str
) -> None:
    p = pg_feature2_with_snapshot
    assert p.status()["db_heads"]
    set_alembic_url(p.root, other_postgres_url)
    data = p.status()
    assert data["database"].endswith(other_postgres_url.rsplit("/", 1)[1])
    assert data["db_heads"] == [] and data["snapshots"] == []


def test_status_follows_an_environment_variable_env_py_read(
    pg_feature2_with_snapshot: Project, other_postgres_url: str
) -> None:
    p = pg_feature2_with_snapshot
    home = p.status()
    p.status()
    before = runs(p)
    proc = p.branchmig("status", "--json", env={"H4_STATUS_DB_URL": other_postgres_url})
    assert proc.returncode == 0, proc.stderr
    there = json.loads(proc.stdout)
    assert runs(p) == before + 1
    assert there["database"] != home["database"] and there["db_heads"] == []
    assert p.status() == home  # back without the variable: its own database again


def test_an_env_py_that_may_move_the_version_table_is_not_remembered(
    pg_feature2_with_snapshot: Project,
) -> None:
    p = pg_feature2_with_snapshot
    _env_py(p).write_text(_env_py(p).read_text() + "\n# SET search_path is done elsewhere\n")
    p.ok("status")
    p.ok("status")
    assert runs(p) == 2 and _memo(p) is None


def test_without_psql_status_goes_the_full_way(
    pg_feature2_with_snapshot: Project, tmp_path: Path
) -> None:
    p = pg_feature2_with_snapshot
    said = p.ok("status").stdout
    tools = tmp_path / "tools"
    tools.mkdir()
    git = shutil.which("git")
    assert git is not None
    (tools / "git").symlink_to(git)
    before = runs(p)
    assert p.ok("status", env={"PATH": str(tools)}).stdout == said
    assert runs(p) == before + 1


@pytest.fixture(scope="module")
def surveyed_database(postgres_server_url: str) -> Iterator[str]:
    name = f"h4_status_survey_{os.getpid()}"
    with new_postgres_database(postgres_server_url, name) as url:
        with postgres_connection(url) as conn:
            conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        yield url


REVISION = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=32
).filter(lambda r: "\0" not in r)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    heads=st.sets(REVISION, max_size=4), key=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)
)
def test_the_survey_reads_what_alembic_and_the_backend_read(
    surveyed_database: str, tmp_path: Path, heads: set[str], key: str
) -> None:
    """Any revision ids (quotes, spaces, non-ASCII), and a snapshot database beside a
    database whose comment only looks like one: the survey says what Alembic's
    MigrationContext and the backend's ``stored()`` say."""
    from alembic.runtime.migration import MigrationContext
    from psycopg import sql
    from sqlalchemy import create_engine

    url = surveyed_database
    backend = PostgreSQLBackend(url, store_dir=tmp_path)
    live = backend.live
    copy = snapshot_database_name(live, key)
    with postgres_connection(url) as conn:
        conn.execute("DELETE FROM alembic_version")
        for head in heads:
            conn.execute("INSERT INTO alembic_version VALUES (%s)", (head,))
    with postgres_connection(url.rsplit("/", 1)[0] + "/postgres") as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(copy)))
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(copy), sql.Literal(marker(live, key))
            )
        )
    try:
        seen = survey(
            Target.from_json(backend.target().as_json()) or backend.target(),
            folder=SnapshotFolder(tmp_path),
        )
        engine = create_engine(url)
        with engine.connect() as conn:
            alembic_heads = MigrationContext.configure(conn).get_current_heads()
        engine.dispose()
        assert seen is not None
        assert seen.heads == tuple(sorted(alembic_heads)) == tuple(sorted(heads))
        assert list(seen.snapshots) == backend.stored()
        assert [s.key for s in seen.snapshots] == [key]
    finally:
        with postgres_connection(url.rsplit("/", 1)[0] + "/postgres") as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(copy)))
