"""``verify`` (``--data`` too), ``verify --drift`` and ``switch --rehearse`` on an
``alembic init -t async`` project: env.py is given scratch URLs that keep the async driver
(``sqlite+aiosqlite``, ``postgresql+asyncpg``, ``mysql+aiomysql``), while branchmig makes,
reads and drops the scratch databases with the same dialect's sync driver (pysqlite,
psycopg, pymysql). No coroutine is left un-awaited on the terminal."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from e2e_projects import ASYNC_BACKENDS, BASE, F1, Project, async_seed_project, script

# With test_verify: a verify drops the scratch databases of killed runs that one plants.
pytestmark = pytest.mark.xdist_group("verify-scratch")

TAGS = "f3a900000002"

FORGETS_A_TABLE = script(
    TAGS,
    BASE,
    '    op.create_table("tags", sa.Column("id", sa.Integer, primary_key=True))',
    "    pass",
)


def _clean(proc: subprocess.CompletedProcess[str]) -> None:
    said = proc.stdout + proc.stderr
    assert "Traceback" not in said and "was never awaited" not in said, said
    assert "RuntimeWarning" not in said, said


def _round_trips(p: Project) -> None:
    """A sound branch passes, a forgetful one is named, drift and a rehearsed switch
    work: everything through env.py's async engine."""
    proc = p.branchmig("verify", "feature1", "--against", "main", "--json")
    _clean(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["revisions"][0]["downgrade"] == "ok"

    p.git("checkout", "-q", "-b", "tags")
    p.write(f"{TAGS}_tags.py", FORGETS_A_TABLE)
    p.commit("tags: a table its downgrade forgets")
    p.git("checkout", "-q", "main")
    proc = p.branchmig("verify", "tags", "--against", "main")
    _clean(proc)
    assert proc.returncode == 1 and "table 'tags' is left behind" in proc.stdout, proc.stdout

    proc = p.branchmig("switch", "feature1", "--rehearse")
    _clean(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rehearsing the move on a copy" in proc.stderr

    proc = p.branchmig("verify", "--drift")
    _clean(proc)
    assert proc.returncode == 0 and "no drift" in proc.stdout, proc.stdout + proc.stderr
    assert p.status()["db_heads"] == [F1]

    proc = p.branchmig("verify", "feature1", "--against", "main", "--data")
    _clean(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(("driver", "server"), ASYNC_BACKENDS)
def test_an_async_project_is_verified_drift_checked_and_rehearsed(
    request: pytest.FixtureRequest,
    async_alembic_template: Path,
    tmp_path: Path,
    driver: str,
    server: str | None,
) -> None:
    p = async_seed_project(request, async_alembic_template, tmp_path / "app", driver, server)
    assert f"+{driver}://" in p.url
    p.ok("sync")
    _round_trips(p)
