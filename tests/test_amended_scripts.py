"""A migration amended (``git commit --amend``) after plain Alembic applied it: the revert
finds the text the database was migrated with where git still has it (the reflog, the
commits that held it), trying each text in turn and putting the database back between;
where none fits, one line names the texts tried and what to type next. On SQLite, and on
PostgreSQL and MariaDB, whose rollback is the snapshot restore."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_projects import (
    BASE,
    BIN,
    F1,
    F1_SCRIPT,
    Project,
    make_seed_project,
    script,
    sqlite_dump,
    sqlite_version,
)

ALEMBIC = str(BIN / "alembic")
F1_FILE = f"{F1}_email.py"
# The amendment: a second column in the upgrade, dropped first in the downgrade. Run on a
# database the first text migrated, this downgrade fails: there is no such column.
F1_WITH_PHONE = script(
    F1,
    BASE,
    '    op.add_column("users", sa.Column("email", sa.String(100), nullable=True))\n'
    '    op.add_column("users", sa.Column("phone", sa.String(20), nullable=True))',
    '    with op.batch_alter_table("users") as batch:\n'
    '        batch.drop_column("phone")\n'
    '        batch.drop_column("email")',
)


def _alembic(p: Project, *args: str) -> None:
    proc = p.run(ALEMBIC, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _amend(p: Project, text: str) -> None:
    """``git commit --amend`` of feature1's script, with no hook installed."""
    p.write(F1_FILE, text)
    p.git("add", "-A")
    p.git("commit", "-q", "--amend", "--no-edit")


def _columns(p: Project, table: str) -> list[str]:
    from sqlalchemy import create_engine, inspect

    url = f"sqlite:///{p.db_path}" if p.url.startswith("sqlite") else p.url
    engine = create_engine(url)
    try:
        return [c["name"] for c in inspect(engine).get_columns(table)]
    finally:
        engine.dispose()


def _applied_by_alembic_then_amended(p: Project, amended: str = F1_WITH_PHONE) -> None:
    """feature1 checked out without hooks, plain ``alembic upgrade head`` (branchmig never
    sees it), then the script amended to add a phone column."""
    p.ok("sync")
    p.git("checkout", "-q", "feature1")
    _alembic(p, "upgrade", "head")
    _amend(p, amended)


@pytest.fixture
def amended_after_plain_alembic(alembic_template: Path, tmp_path: Path) -> Project:
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic")
    _applied_by_alembic_then_amended(p)
    return p


def test_status_names_the_revision_with_several_texts(amended_after_plain_alembic: Project) -> None:
    p = amended_after_plain_alembic
    data = p.status()
    assert (data["pending"], data["unknown"]) == ([], [])
    texts = data["several_texts"][F1]
    assert len(texts) == 2 and "from the working tree" in texts[0], texts
    assert "from HEAD@{1}" in texts[1], texts
    assert data["in_step"] is False
    out = p.ok("status").stdout
    assert f"texts:      '{F1}': git holds 2 texts" in out, out
    assert "matches the working tree" not in out

    p.ok("sync")  # runs nothing, and records neither text as the one applied
    assert p.status()["several_texts"][F1] == texts


@pytest.mark.parametrize(
    "how", ["git checkout", "switch", "switch --rehearse", "checkout then sync"]
)
def test_an_amended_script_is_reverted_with_the_text_that_migrated_the_database(
    amended_after_plain_alembic: Project, how: str
) -> None:
    p = amended_after_plain_alembic
    if how == "git checkout":
        p.ok("install")
        out = p.checkout("-q", "main")
    elif how.startswith("switch"):
        out = p.ok(*how.split(), "main")
    else:
        p.git("checkout", "-q", "main")
        out = p.ok("sync")
    said = out.stdout + out.stderr
    assert "Traceback" not in said
    assert f"'{F1}' was reverted with its text" in said and "from HEAD@{" in said, said
    assert p.branch() == "main"
    assert sqlite_version(p.db_path) == {BASE}
    assert _columns(p, "users") == ["id", "name"]
    assert "several_texts" in p.status() and p.status()["several_texts"] == {}


def test_the_record_is_tried_first_then_the_text_plain_alembic_ran_after_the_amend(
    alembic_template: Path, tmp_path: Path
) -> None:
    """The reverse order: branchmig applied the text with the phone column (and recorded
    it); plain Alembic reverted it, the amend took the column out again, plain Alembic
    applied that. The record's text no longer fits; the tree's does."""
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic")
    p.ok("sync")
    p.git("checkout", "-q", "feature1")
    _amend(p, F1_WITH_PHONE)
    p.ok("sync", "--no-snapshot")  # so that no snapshot of main is there to restore
    assert "phone" in _columns(p, "users")
    _alembic(p, "downgrade", "-1")
    _amend(p, F1_SCRIPT)
    _alembic(p, "upgrade", "head")
    assert _columns(p, "users") == ["id", "name", "email"]

    out = p.ok("switch", "main")
    said = out.stdout + out.stderr
    assert "from branchmig's record does not fit the database" in said, said
    assert "trying its text" in said and "from the previous HEAD" in said, said
    assert sqlite_version(p.db_path) == {BASE}
    assert _columns(p, "users") == ["id", "name"]


def test_no_text_that_fits_stops_with_the_texts_tried_and_nothing_changed(
    amended_after_plain_alembic: Project,
) -> None:
    """The text that migrated the database is gone from git (reflog expired, gc): the one
    left fails, the database is put back, and the line says what was tried and what to
    type next."""
    p = amended_after_plain_alembic
    p.git("reflog", "expire", "--expire=now", "--all")
    p.git("gc", "-q", "--prune=now")
    before = sqlite_dump(p.db_path)
    proc = p.branchmig("switch", "main")
    said = proc.stdout + proc.stderr
    assert proc.returncode == 1, said
    assert "Traceback" not in said
    line = [ln for ln in said.splitlines() if "Downgrade of" in ln]
    assert len(line) == 1, said
    assert f"Downgrade of '{F1}' failed" in line[0]
    assert "Nothing changed: the database is as it was before" in line[0]
    assert "tried with its only text" in line[0] and "from the previous HEAD" in line[0]
    assert "it does not fit the database" in line[0]
    assert f"alembic downgrade {F1}-1), then run: branchmig switch main" in line[0]
    assert p.branch() == "feature1"
    assert sqlite_dump(p.db_path) == before


# On a server, the amended downgrade drops the column that is there first: MariaDB commits
# that before the second fails, so only the snapshot's restore brings it back for the retry.
F1_WITH_PHONE_DROPPING_EMAIL_FIRST = script(
    F1,
    BASE,
    '    op.add_column("users", sa.Column("email", sa.String(100), nullable=True))\n'
    '    op.add_column("users", sa.Column("phone", sa.String(20), nullable=True))',
    '    op.drop_column("users", "email")\n    op.drop_column("users", "phone")',
)


def _on_server(alembic_template: Path, tmp_path: Path, url: str) -> Project:
    p = make_seed_project(alembic_template, tmp_path / "project", kind="alembic", url=url)
    _applied_by_alembic_then_amended(p, F1_WITH_PHONE_DROPPING_EMAIL_FIRST)
    return p


@pytest.mark.postgres
def test_postgresql_reverts_an_amended_script_with_the_applied_text(
    alembic_template: Path, tmp_path: Path, fresh_postgres_url: str
) -> None:
    p = _on_server(alembic_template, tmp_path, fresh_postgres_url)
    assert F1 in p.status()["several_texts"]
    out = p.ok("switch", "main")
    assert "from HEAD@{" in out.stdout + out.stderr
    assert _columns(p, "users") == ["id", "name"]
    out = p.ok("switch", "feature1")  # the amended text applied now, and recorded
    assert _columns(p, "users") == ["id", "name", "email", "phone"]
    assert p.status()["several_texts"] == {}


@pytest.mark.mysql
def test_mariadb_retries_from_the_database_put_back(
    alembic_template: Path, tmp_path: Path, fresh_mysql_url: str
) -> None:
    """MariaDB's DDL is not transactional: the amended downgrade drops nothing before it
    fails here, but the retry must start from the snapshot's restore all the same."""
    p = _on_server(alembic_template, tmp_path, fresh_mysql_url)
    out = p.ok("switch", "main")
    assert "trying its text" in out.stdout + out.stderr
    assert _columns(p, "users") == ["id", "name"]
