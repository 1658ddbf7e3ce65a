"""``branchmig verify``: each revision a branch adds goes up, down and up again on a scratch
database of the project's own backend (SQLite, PostgreSQL, MariaDB), and its downgrade must
leave the schema as it was; ``--drift`` compares the live database with its migrations.
Real git repositories, real ``alembic init`` projects, the real servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from db_servers import (
    mysql_connection,
    postgres_connection,
)
from e2e_projects import (
    BASE,
    BRANCHMIG,
    F1,
    Project,
    interruptible,
    make_seed_project,
    script,
    wait_for,
)
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from branchmig.schema import Column, Difference, Index, Schema, Table, compare

# One worker for every test here: a verify drops the scratch databases of killed runs,
# which the scratch test plants on the same servers.
pytestmark = pytest.mark.xdist_group("verify-scratch")

BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mysql", marks=pytest.mark.mysql),
]

TAGS = "f3a900000001"
INDEX = "f4b900000001"
MOOD = "f5c900000001"
UNBATCHED = "f6d900000001"
SLOW = "f7e900000001"


def _project(
    request: pytest.FixtureRequest, template: Path, tmp_path: Path, backend: str
) -> Project:
    url = None
    if backend == "postgresql":
        url = request.getfixturevalue("fresh_postgres_url")
    elif backend == "mysql":
        url = request.getfixturevalue("fresh_mysql_url")
    return make_seed_project(template, tmp_path / "project", kind="alembic", url=url)


@pytest.fixture(params=BACKENDS)
def seed_project(request: pytest.FixtureRequest, alembic_template: Path, tmp_path: Path) -> Project:
    """The seed repository (main: users; feature1: users.email; feature2: posts) on the
    backend named by the parameter, main checked out, no database yet."""
    return _project(request, alembic_template, tmp_path, request.param)


@pytest.fixture
def pg_seed_project(
    request: pytest.FixtureRequest, alembic_template: Path, tmp_path: Path
) -> Project:
    return _project(request, alembic_template, tmp_path, "postgresql")


def add_branch(p: Project, name: str, files: dict[str, str], *, start: str = "main") -> None:
    """Branch ``name`` from ``start`` with ``files`` added to the versions folder; back on
    the branch checked out before."""
    here = p.branch()
    p.git("checkout", "-q", "-b", name, start)
    for filename, body in files.items():
        p.write(filename, body)
    p.commit(f"{name}: migrations")
    p.git("checkout", "-q", here)


def verify(p: Project, *args: str) -> tuple[int, dict[str, Any], str]:
    proc = p.branchmig("verify", *args, "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


FORGETS_A_TABLE = script(
    TAGS,
    BASE,
    '    op.create_table("tags", sa.Column("id", sa.Integer, primary_key=True))\n'
    '    op.create_table("post_tags", sa.Column("tag_id", sa.Integer,\n'
    '                    sa.ForeignKey("tags.id"), primary_key=True))',
    '    op.drop_table("post_tags")',
)

FORGETS_AN_INDEX = script(
    INDEX, BASE, '    op.create_index("ix_users_name", "users", ["name"])', "    pass"
)

FORGETS_AN_ENUM = script(
    MOOD,
    BASE,
    '    op.create_table("moods", sa.Column("id", sa.Integer, primary_key=True),\n'
    '                    sa.Column("mood", sa.Enum("happy", "sad", name="mood")))',
    '    op.drop_table("moods")',
)

UNBATCHED_DROP = script(
    UNBATCHED,
    BASE,
    '    op.add_column("users", sa.Column("email", sa.String(100)))\n'
    '    op.create_index("ix_users_email", "users", ["email"])',
    '    op.drop_column("users", "email")',
)


def _live_state(p: Project, backend: str) -> Any:
    """What "the live database is unchanged" compares: the SQLite file's bytes, else the
    tables, columns and alembic_version rows as the server reports them."""
    if backend == "sqlite":
        return p.db_path.read_bytes()
    engine = create_engine(p.url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            columns = conn.execute(
                text(
                    "SELECT table_name, column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = :s ORDER BY table_name, column_name"
                ),
                {"s": "public" if backend == "postgresql" else conn.engine.url.database},
            ).fetchall()
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).fetchall()
        return columns, versions
    finally:
        engine.dispose()


def _scratch_databases(p: Project, backend: str, *, running: bool = False) -> list[str]:
    """The scratch databases verify made on the project's server and left there: those
    whose maker (the pid in the name) is gone. A verify still running, another test's on a
    parallel worker, is not a leftover (with ``running``, those are listed too)."""
    if backend == "sqlite":
        return []
    if backend == "postgresql":
        with postgres_connection(p.url) as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'bm\\_verify\\_%'"
                )
            ]
    else:
        with mysql_connection(p.url) as conn, conn.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE 'bm\\_verify\\_%'")
            names = [r[0] for r in cur.fetchall()]
    return [name for name in names if running or not _running(name.split("_")[2])]


def _running(pid: str) -> bool:
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- a sound branch --------------------------------------------------------------------------


def test_sound_branches_pass_and_the_live_database_is_untouched(
    seed_project: Project, request: Any
) -> None:
    p = seed_project
    backend = request.node.callspec.params["seed_project"]
    p.ok("sync")  # the live database at BASE
    before = _live_state(p, backend)
    code, report, _ = verify(p, "feature1", "--against", "main")
    assert code == 0, report
    assert report["ok"] and report["findings"] == []
    assert report["shared"] == [BASE] and report["backend"] == backend
    assert report["revisions"] == [
        {
            "revision": F1,
            "path": f"alembic/versions/{F1}_email.py",
            "upgrade": "ok",
            "downgrade": "ok",
            "upgrade_again": "ok",
        }
    ]
    assert verify(p, "feature2", "--against", "main")[0] == 0
    assert _live_state(p, backend) == before
    assert _scratch_databases(p, backend) == []


def test_the_working_tree_is_verified_against_main_by_default(seed_project: Project) -> None:
    p = seed_project
    p.git("checkout", "-q", "feature1")
    proc = p.ok("verify")
    assert "Verified 1 revision of the working tree against 'main'" in proc.stdout
    assert f"ok   {F1}" in proc.stdout
    # Nothing new on main itself.
    p.git("checkout", "-q", "main")
    assert "Nothing to verify" in p.ok("verify").stdout


# -- downgrades that leave traces -------------------------------------------------------------


def test_a_downgrade_that_forgets_a_table_fails_naming_it(
    seed_project: Project, request: Any
) -> None:
    p = seed_project
    backend = request.node.callspec.params["seed_project"]
    add_branch(p, "tags", {f"{TAGS}_tags.py": FORGETS_A_TABLE})
    p.ok("sync")
    before = _live_state(p, backend)
    code, report, _ = verify(p, "tags", "--against", "main")
    assert code == 1
    kinds = [(f["revision"], f["kind"]) for f in report["findings"]]
    assert kinds == [(TAGS, "trace"), (TAGS, "upgrade-again-failed")]
    trace = report["findings"][0]["message"]
    assert f"The downgrade of '{TAGS}' (alembic/versions/{TAGS}_tags.py)" in trace
    assert "table 'tags' is left behind" in trace
    assert report["revisions"][0] | {"path": ""} == {
        "revision": TAGS,
        "path": "",
        "upgrade": "ok",
        "downgrade": "left traces",
        "upgrade_again": "failed",
    }
    assert _live_state(p, backend) == before
    assert _scratch_databases(p, backend) == []


# A branch of five: sound, leaves a row, sound, fails, never reached.
CHAIN = ("c1a000000001", "c2a000000002", "c3a000000003", "c4a000000004", "c5a000000005")
CHAIN_SCRIPTS = {
    f"{CHAIN[0]}_a.py": script(
        CHAIN[0],
        BASE,
        '    op.create_table("a", sa.Column("id", sa.Integer, primary_key=True))',
        '    op.drop_table("a")',
    ),
    f"{CHAIN[1]}_seed.py": script(
        CHAIN[1],
        CHAIN[0],
        "    op.execute(\"INSERT INTO users (name) VALUES ('root')\")",
        "    pass",
    ),
    f"{CHAIN[2]}_b.py": script(
        CHAIN[2],
        CHAIN[1],
        '    op.create_table("b", sa.Column("id", sa.Integer, primary_key=True),\n'
        '                    sa.Column("a_id", sa.Integer, sa.ForeignKey("a.id")))',
        '    op.drop_table("b")',
    ),
    f"{CHAIN[3]}_raises.py": script(
        CHAIN[3], CHAIN[2], '    raise RuntimeError("not today")', "    pass"
    ),
    f"{CHAIN[4]}_c.py": script(CHAIN[4], CHAIN[3], "    pass", "    pass"),
}


def test_each_revision_after_traces_starts_from_a_database_built_straight_up(
    seed_project: Project,
) -> None:
    """One run of env.py takes the round trips until one leaves traces; the next starts
    on a rebuilt database (so the row left counts before it, not against it), and an
    upgrade that fails ends the verification there."""
    p = seed_project
    add_branch(p, "chain", CHAIN_SCRIPTS)
    code, report, said = verify(p, "chain", "--against", "main")
    assert code == 1
    outcomes = [
        (r["revision"], r["upgrade"], r["downgrade"], r["upgrade_again"])
        for r in report["revisions"]
    ]
    assert outcomes == [
        (CHAIN[0], "ok", "ok", "ok"),
        (CHAIN[1], "ok", "left traces", "ok"),
        (CHAIN[2], "ok", "ok", "ok"),
        (CHAIN[3], "failed", "not run", "not run"),
        (CHAIN[4], "not run", "not run", "not run"),
    ]
    kinds = [(f["revision"], f["kind"]) for f in report["findings"]]
    assert kinds == [(CHAIN[1], "trace"), (CHAIN[3], "upgrade-failed")]
    assert (
        "table 'users' holds 1 row, 0 rows before the upgrade" in report["findings"][0]["message"]
    )
    assert "raises RuntimeError: not today" in report["findings"][1]["message"]
    for rev in CHAIN[:4]:
        assert said.count(f"  {rev}: upgrade, downgrade, upgrade again") == 1, said


def test_a_downgrade_that_forgets_an_index_fails_naming_it(seed_project: Project) -> None:
    p = seed_project
    add_branch(p, "index", {f"{INDEX}_index.py": FORGETS_AN_INDEX})
    code, report, _ = verify(p, "index", "--against", "main")
    assert code == 1
    assert report["findings"][0]["kind"] == "trace"
    assert "index 'users.ix_users_name' is left behind" in report["findings"][0]["message"]
    assert report["findings"][0]["differences"] == [
        {
            "kind": "index",
            "name": "users.ix_users_name",
            "change": "added",
            "old": None,
            "new": "(name)",
        }
    ]


@pytest.mark.postgres
def test_a_downgrade_that_forgets_an_enum_type_fails_naming_it(pg_seed_project: Project) -> None:
    p = pg_seed_project
    add_branch(p, "moods", {f"{MOOD}_moods.py": FORGETS_AN_ENUM})
    code, report, _ = verify(p, "moods", "--against", "main")
    assert code == 1
    first = report["findings"][0]
    assert first["kind"] == "trace" and first["revision"] == MOOD
    assert "enum type 'mood' is left behind" in first["message"]
    # Its upgrade, run again, trips over the type it left.
    assert report["findings"][1]["kind"] == "upgrade-again-failed"
    assert 'type "mood" already exists' in report["findings"][1]["message"]
    assert _scratch_databases(p, "postgresql") == []


def test_on_sqlite_an_unbatched_drop_of_an_indexed_column_fails_with_the_fix(
    alembic_template: Path, tmp_path: Path
) -> None:
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic")
    add_branch(
        p,
        "unbatched",
        {
            f"{UNBATCHED}_email.py": UNBATCHED_DROP,
            f"{TAGS}_tags.py": FORGETS_A_TABLE.replace(
                f"down_revision: str | Sequence[str] | None = {BASE!r}",
                f"down_revision: str | Sequence[str] | None = {UNBATCHED!r}",
            ),
        },
    )
    p.ok("sync")
    before = p.db_path.read_bytes()
    proc = p.branchmig("verify", "unbatched", "--against", "main")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (
        f"branchmig: The downgrade of '{UNBATCHED}' (alembic/versions/{UNBATCHED}_email.py)"
        " raises OperationalError" in proc.stdout
    ), proc.stdout
    assert (
        f"To fix it: revision '{UNBATCHED}' (alembic/versions/{UNBATCHED}_email.py, "
        "line 26) runs op.drop_column('users', 'email') outside batch mode" in proc.stdout
    )
    assert "with op.batch_alter_table('users') as batch" in proc.stdout
    # The revision after it is still verified, on a database rebuilt past the failure.
    assert f"FAIL {TAGS}" in proc.stdout and "table 'tags' is left behind" in proc.stdout
    assert p.db_path.read_bytes() == before
    assert p.git("status", "--porcelain") == ""


# -- reports -----------------------------------------------------------------------------------


def test_markdown_report_for_a_pull_request(alembic_template: Path, tmp_path: Path) -> None:
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic")
    add_branch(p, "index", {f"{INDEX}_index.py": FORGETS_AN_INDEX})
    proc = p.branchmig("verify", "index", "--against", "main", "--format", "markdown")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0] == "### ❌ branchmig verify: 2 problems"
    assert "| revision | file | upgrade | downgrade | upgrade again |" in lines
    assert f"| `{INDEX}` | `alembic/versions/{INDEX}_index.py` | ✅ | ⚠️ | ❌ |" in lines
    assert lines[-2].startswith(
        f"- **`{INDEX}`** (`alembic/versions/{INDEX}_index.py`): The downgrade of '{INDEX}'"
    )
    assert lines[-1].startswith(
        f"- **`{INDEX}`** (`alembic/versions/{INDEX}_index.py`): "
        f"Run again after its downgrade, the upgrade of '{INDEX}'"
    )


def test_an_env_py_that_ignores_sqlalchemy_url_is_refused(
    alembic_template: Path, tmp_path: Path
) -> None:
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic")
    env_py = p.root / "alembic" / "env.py"
    env_py.write_text(
        env_py.read_text().replace(
            "config.get_section(config.config_ini_section, {})",
            '{"sqlalchemy.url": "sqlite:///app.db"}',
        )
    )
    p.commit("env.py: a fixed URL")
    proc = p.branchmig("verify", "feature1", "--against", "main")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "env.py connects to sqlite:///app.db, not to the sqlalchemy.url" in proc.stderr


def test_an_unknown_base_is_a_usage_error(alembic_template: Path, tmp_path: Path) -> None:
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic")
    proc = p.branchmig("verify", "--against", "nope")
    assert proc.returncode == 2 and "Unknown git ref 'nope'" in proc.stderr


# -- Ctrl-C -----------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_verify_drops_its_scratch_database(
    pg_seed_project: Project, tmp_path: Path, signum: int
) -> None:
    p = pg_seed_project
    marker = tmp_path / "upgrading"
    slow = script(
        SLOW,
        BASE,
        f'    open({str(marker)!r}, "w").close()\n    time.sleep(30)',
        "    pass",
        top="import time\n",
    )
    add_branch(p, "slow", {f"{SLOW}_slow.py": slow})
    proc = subprocess.Popen(
        [BRANCHMIG, "verify", "slow", "--against", "main"],
        cwd=p.root,
        env=p.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        wait_for(marker.exists)
        assert _scratch_databases(p, "postgresql", running=True) != []
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert _scratch_databases(p, "postgresql") == [], err


# -- drift -------------------------------------------------------------------------------------


ADD_NICK = {
    "sqlite": "ALTER TABLE users ADD COLUMN nick VARCHAR(20)",
    "postgresql": "ALTER TABLE users ADD COLUMN nick VARCHAR(20)",
    "mysql": "ALTER TABLE users ADD COLUMN nick VARCHAR(20)",
}


def _execute(p: Project, sql: str) -> None:
    url = f"sqlite:///{p.db_path}" if p.url.startswith("sqlite") else p.url
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def test_drift_after_a_hand_made_alter_table(seed_project: Project, request: Any) -> None:
    p = seed_project
    backend = request.node.callspec.params["seed_project"]
    p.git("checkout", "-q", "feature1")
    p.ok("sync")
    assert "no drift" in p.ok("verify", "--drift").stdout
    _execute(p, ADD_NICK[backend])
    before = _live_state(p, backend)
    proc = p.branchmig("verify", "--drift", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["heads"] == [F1]
    assert [(d["kind"], d["name"], d["change"]) for d in report["differences"]] == [
        ("column", "users.nick", "added")
    ]
    assert report["differences"][0]["message"] == (
        "column 'users.nick' is in the database, but no migration makes it"
    )
    assert _live_state(p, backend) == before
    assert _scratch_databases(p, backend) == []


def test_drift_names_what_an_edited_migration_left_behind(
    alembic_template: Path, tmp_path: Path
) -> None:
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic")
    p.ok("sync")
    path = next(p.versions.glob(f"{BASE}_*.py"))
    path.write_text(
        path.read_text().replace("sa.String(50), nullable=False", "sa.String(80), nullable=False")
    )
    proc = p.branchmig("verify", "--drift")
    assert proc.returncode == 1
    assert (
        "column 'users.name' is VARCHAR(50) NOT NULL in the database, "
        "VARCHAR(80) NOT NULL by the migrations"
    ) in proc.stdout


def test_drift_takes_no_ref(alembic_template: Path, tmp_path: Path) -> None:
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic")
    proc = p.branchmig("verify", "feature1", "--drift")
    assert proc.returncode == 2 and "--drift compares the live database" in proc.stderr


# -- the comparison itself (pure) ------------------------------------------------------------


def _users(*columns: Column, indexes: tuple[Index, ...] = ()) -> Table:
    return Table.of("users", columns=columns, primary_key=("id",), indexes=indexes)


ID = Column("id", "INTEGER", False, None)


def test_compare_reports_a_whole_table_once_and_columns_by_name() -> None:
    old = Schema({"users": _users(ID)})
    new = Schema(
        {
            "users": _users(Column("email", "TEXT", True, None), ID),
            "tags": Table.of("tags", columns=[ID]),
        }
    )
    assert compare(old, new) == (
        Difference("table", "tags", "added", None, "(id)"),
        Difference("column", "users.email", "added", None, "TEXT"),
    )
    assert compare(old, old) == ()


def test_compare_reports_changed_columns_and_indexes() -> None:
    old = Schema(
        {
            "users": _users(
                ID, Column("name", "VARCHAR(50)", False, None), indexes=(Index("ix", ("name",)),)
            )
        }
    )
    new = Schema(
        {
            "users": _users(
                ID,
                Column("name", "VARCHAR(50)", True, "'x'"),
                indexes=(Index("ix", ("name",), unique=True),),
            )
        }
    )
    assert compare(old, new) == (
        Difference(
            "column", "users.name", "changed", "VARCHAR(50) NOT NULL", "VARCHAR(50) DEFAULT 'x'"
        ),
        Difference("index", "users.ix", "changed", "(name)", "UNIQUE (name)"),
    )


# -- what a peer catches too -------------------------------------------------------------------

HEAD_A, HEAD_B = "f8a900000001", "f8b900000001"
SEEDED = "f9c900000001"
NOTED = "fad900000001"
PURGE = "fbe900000001"
SHOUT = "fcf900000001"

# An upgrade that adds a CHECK constraint (in batch mode, as SQLite needs) and a row: its
# downgrade undoes neither.
CHECKS_AND_SEEDS = script(
    SEEDED,
    BASE,
    '    with op.batch_alter_table("users") as batch:\n'
    '        batch.create_check_constraint("ck_users_name", "name <> \'\'")\n'
    "    op.execute(\"INSERT INTO users (name) VALUES ('root')\")",
    "    pass",
)
COMMENTS = script(
    NOTED,
    BASE,
    '    op.create_table_comment("users", "who signs in")\n'
    '    op.alter_column("users", "name", existing_type=sa.String(50),\n'
    '                    existing_nullable=False, comment="shown to others")',
    "    pass",
)
PURGES_ROWS = script(
    PURGE, BASE, "    op.execute(\"DELETE FROM users WHERE name = 'bob'\")", "    pass"
)
SHOUTS_NAMES = script(
    SHOUT, BASE, '    op.execute("UPDATE users SET name = upper(name)")', "    pass"
)


def test_several_heads_on_the_ref_fail_before_anything_runs(
    alembic_template: Path, tmp_path: Path
) -> None:
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic")
    add_branch(
        p,
        "twoheads",
        {
            f"{HEAD_A}_a.py": script(HEAD_A, BASE, "    pass", "    pass"),
            f"{HEAD_B}_b.py": script(HEAD_B, BASE, "    pass", "    pass"),
        },
    )
    proc = p.branchmig("verify", "twoheads", "--against", "main")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    said = proc.stderr.strip()
    assert said.startswith("branchmig: 2 heads in 'twoheads': "), said
    assert f"'{HEAD_A}' (alembic/versions/{HEAD_A}_a.py)" in said
    assert f"'{HEAD_B}' (alembic/versions/{HEAD_B}_b.py)" in said
    assert said.endswith("Run: branchmig merge-heads (or branchmig merge-heads --rebase)")
    assert len(said.splitlines()) == 1 and proc.stdout == ""
    assert not p.db_path.exists()  # nothing ran


def test_a_downgrade_that_forgets_a_check_constraint_and_seeded_rows_fails_naming_them(
    seed_project: Project,
) -> None:
    p = seed_project
    add_branch(p, "seeded", {f"{SEEDED}_seeded.py": CHECKS_AND_SEEDS})
    code, report, _ = verify(p, "seeded", "--against", "main")
    assert code == 1
    trace = report["findings"][0]["message"]
    assert report["findings"][0]["kind"] == "trace", trace
    assert "check constraint 'users.ck_users_name' is left behind" in trace
    assert "table 'users' holds 1 row, 0 rows before the upgrade" in trace


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ],
)
@pytest.mark.alone  # no other worker's verify may drop the leftovers it makes
def test_scratch_databases_of_killed_runs_are_shown_then_dropped(
    request: pytest.FixtureRequest, alembic_template: Path, tmp_path: Path, backend: str
) -> None:
    """A verify killed with SIGKILL leaves its scratch database: ``status`` names it, the
    next ``verify`` (and ``snapshot prune --strays``) drops it; a running verify's stays."""
    from branchmig.verify import scratch_name

    p = _project(request, alembic_template, tmp_path, backend)
    p.ok("sync")
    gone = subprocess.Popen(["true"])
    gone.wait()
    killed = [scratch_name(gone.pid, "dead0001"), scratch_name(gone.pid, "dead0002")]
    running = scratch_name(os.getpid(), "live0001")
    engine = create_engine(p.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    quote = '"' if backend == "postgresql" else "`"
    try:
        with engine.connect() as conn:
            for name in [*killed, running]:
                conn.execute(text(f"CREATE DATABASE {quote}{name}{quote}"))
        assert p.status()["dead_scratches"] == killed
        assert f"scratch:    '{killed[0]}' of a verify that was killed" in p.ok("status").stdout

        proc = p.ok("verify", "feature1", "--against", "main")
        assert f"dropped the scratch database '{killed[0]}'" in proc.stderr, proc.stderr
        left = _scratch_databases(p, backend, running=True)
        assert running in left and not set(killed) & set(left)
        assert p.status()["dead_scratches"] == []

        with engine.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {quote}{killed[0]}{quote}"))
        proc = p.ok("snapshot", "prune", "--strays")
        assert f"Dropped the scratch database '{killed[0]}'" in proc.stdout, proc.stdout
        assert killed[0] not in _scratch_databases(p, backend, running=True)
    finally:
        with engine.connect() as conn:
            for name in [*killed, running]:
                conn.execute(text(f"DROP DATABASE IF EXISTS {quote}{name}{quote}"))


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ],
)
def test_a_downgrade_that_forgets_comments_fails_naming_them(
    request: pytest.FixtureRequest, alembic_template: Path, tmp_path: Path, backend: str
) -> None:
    p = _project(request, alembic_template, tmp_path, backend)
    add_branch(p, "noted", {f"{NOTED}_noted.py": COMMENTS})
    code, report, _ = verify(p, "noted", "--against", "main")
    assert code == 1
    trace = report["findings"][0]["message"]
    assert "table comment 'users' is left behind" in trace
    assert (
        "column 'users.name' is VARCHAR(50) NOT NULL COMMENT 'shown to others', "
        "was VARCHAR(50) NOT NULL before the upgrade"
    ) in trace


def _copies_left(p: Project, backend: str) -> list[str]:
    """The copies of the live database ``verify --data`` made and left behind."""
    if backend == "sqlite":  # made in a temporary folder: nothing in the project
        return [path.name for path in p.root.rglob("*verify-*")]
    if backend == "mysql":
        with mysql_connection(p.url) as conn, conn.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE '%\\_\\_bm\\_verify-%'")
            return [r[0] for r in cur.fetchall()]
    with postgres_connection(p.url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE '%\\_\\_bm\\_verify-%'"
            )
        ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_data_starts_from_a_copy_of_the_live_rows_and_names_the_tables_they_changed(
    request: pytest.FixtureRequest, alembic_template: Path, tmp_path: Path, backend: str
) -> None:
    p = _project(request, alembic_template, tmp_path, backend)
    add_branch(p, "purge", {f"{PURGE}_purge.py": PURGES_ROWS})
    add_branch(p, "shout", {f"{SHOUT}_shout.py": SHOUTS_NAMES})
    p.ok("sync")
    _execute(p, "INSERT INTO users (name) VALUES ('ada'), ('bob')")
    before = _live_state(p, backend), _rows(p)
    # On an empty database, neither is seen.
    assert verify(p, "purge", "--against", "main")[0] == 0
    assert verify(p, "shout", "--against", "main")[0] == 0

    code, report, _ = verify(p, "purge", "--against", "main", "--data")
    assert code == 1
    assert (
        "table 'users' holds 1 row, 2 rows before the upgrade" in (report["findings"][0]["message"])
    )
    code, report, _ = verify(p, "shout", "--against", "main", "--data")
    assert code == 1
    assert report["findings"][0]["differences"][0]["kind"] == "content"
    assert (
        "table 'users' holds as many rows as before the upgrade, but not the same ones"
        in report["findings"][0]["message"]
    )
    assert (_live_state(p, backend), _rows(p)) == before
    assert _copies_left(p, backend) == []

    # The live database at feature1's head: its copy is reverted to main's first; a branch
    # without feature1's revision cannot revert it.
    p.ok("switch", "feature1")
    assert verify(p, "feature1", "--against", "main", "--data")[0] == 0
    proc = p.branchmig("verify", "purge", "--against", "main", "--data")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"The live database is at '{F1}', which the scripts being verified do not have" in (
        proc.stderr
    )
    assert _copies_left(p, backend) == []


def _rows(p: Project) -> list[Any]:
    url = f"sqlite:///{p.db_path}" if p.url.startswith("sqlite") else p.url
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text("SELECT * FROM users ORDER BY id"))]
    finally:
        engine.dispose()
