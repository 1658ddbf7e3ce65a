"""``branchmig demo``: the whole job on an embedded default, for a new user with nothing
set up. In a temporary folder: a git repository with an Alembic project on SQLite, two
feature branches each with a migration, the hooks installed, and a switch back and forth
that keeps the data of a column one branch drops."""

from __future__ import annotations

import contextlib
import io
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from branchmig.errors import BranchmigError
from branchmig.gitrepo import GitRepo
from branchmig.hooks import install
from branchmig.move.commands import switch, sync
from branchmig.workspace import Workspace

Say = Callable[[str], None]

_SCRIPT = '''"""{message}

Revision ID: {revision}
Revises: {down}
"""
from alembic import op
import sqlalchemy as sa

revision = {revision!r}
down_revision = {down_repr}
branch_labels = None
depends_on = None


def upgrade():
{upgrade}


def downgrade():
{downgrade}
'''

_MIGRATIONS = {
    "base": (
        "create users",
        None,
        '    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True),\n'
        '                    sa.Column("name", sa.String(50), nullable=False))',
        '    op.drop_table("users")',
    ),
    "f1email": (
        "add users.email",
        "base",
        '    op.add_column("users", sa.Column("email", sa.String(100)))',
        '    with op.batch_alter_table("users") as batch_op:\n'
        '        batch_op.drop_column("email")',
    ),
    "f2posts": (
        "create posts",
        "base",
        '    op.create_table("posts", sa.Column("id", sa.Integer, primary_key=True),\n'
        '                    sa.Column("title", sa.String(100)))',
        '    op.drop_table("posts")',
    ),
}


@dataclass(frozen=True)
class DemoResult:
    folder: Path
    kept: bool
    email_kept: bool


def _write_migration(folder: Path, revision: str) -> None:
    message, down, upgrade, downgrade = _MIGRATIONS[revision]
    text = _SCRIPT.format(
        message=message,
        revision=revision,
        down=down or "",
        down_repr=repr(down),
        upgrade=upgrade,
        downgrade=downgrade,
    )
    (folder / "alembic" / "versions" / f"{revision}_{message.replace(' ', '_')}.py").write_text(
        text.replace("add_users.email", "add_email")
    )


def _columns(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[1] for row in conn.execute("PRAGMA table_info(users)")]


def _tables(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return sorted(
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name != 'alembic_version'"
            )
        )


def run_demo(*, folder: Path | None = None, keep: bool = False, say: Say) -> DemoResult:
    """Build the throwaway project in ``folder`` (a new temp folder by default), switch
    between its branches, and narrate each step through ``say``."""
    if shutil.which("git") is None:
        raise BranchmigError("demo: git is not installed")
    root = Path(tempfile.mkdtemp(prefix="branchmig-demo-")) if folder is None else folder
    root.mkdir(parents=True, exist_ok=True)
    db = root / "app.db"
    try:
        say(f"1. A git repository with an Alembic project on SQLite, in {root}")
        repo = _project_with_two_branches(root, say)

        say("\n2. On feature1: upgrade the database, and store an e-mail address")
        ws = Workspace.open(root)
        sync(ws, snapshot=False)
        with sqlite3.connect(db) as conn:
            conn.execute("INSERT INTO users (name, email) VALUES ('ann', 'ann@example.com')")
        say(f"   users columns: {', '.join(_columns(db))}; row: ann, ann@example.com")

        say("\n3. $ branchmig install")
        result = install(
            repo_root=ws.repo.top, python=sys.executable, watch=ws.project.watch_paths()
        )
        say(f"   hooks: {', '.join(p.name for p in result.installed)}")

        say("\n4. $ branchmig switch feature2")
        _switch_to_feature2(ws, db, say)
        ws.close()

        say("\n5. $ git checkout feature1   (the post-checkout hook does the rest)")
        kept = _back_through_the_hook(repo, db, say)
        return DemoResult(root, keep, kept)
    finally:
        if not keep and folder is None:
            shutil.rmtree(root, ignore_errors=True)


def _project_with_two_branches(root: Path, say: Say) -> GitRepo:
    """An Alembic project on SQLite in a new repository at ``root``: ``main`` with one
    migration, ``feature1`` and ``feature2`` with one each; ``feature1`` checked out."""
    from alembic import command
    from alembic.config import Config

    repo = GitRepo.init(root, branch="main")
    # A machine with no git identity set up can run the demo too.
    repo.set_config("user.name", "branchmig demo")
    repo.set_config("user.email", "demo@branchmig.invalid")
    cfg = Config(str(root / "alembic.ini"))
    with contextlib.redirect_stdout(io.StringIO()):
        command.init(cfg, str(root / "alembic"), template="generic")
    ini = (root / "alembic.ini").read_text()
    ini = ini.replace(
        "sqlalchemy.url = driver://user:pass@localhost/dbname",
        "sqlalchemy.url = sqlite:///app.db",
    )
    ini = ini.replace("[logger_alembic]\nlevel = INFO", "[logger_alembic]\nlevel = WARNING")
    (root / "alembic.ini").write_text(ini)
    (root / ".gitignore").write_text("app.db\n__pycache__/\n")
    _write_migration(root, "base")
    repo.commit_all("base: users table")
    say("   main:     base     creates table users")
    repo.checkout_new_branch("feature1")
    _write_migration(root, "f1email")
    repo.commit_all("feature1: users.email")
    say("   feature1: f1email  adds column users.email (its downgrade drops it)")
    repo.checkout_new_branch("feature2", "main")
    _write_migration(root, "f2posts")
    repo.commit_all("feature2: posts table")
    say("   feature2: f2posts  creates table posts")
    repo.checkout("feature1")
    return repo


def _switch_to_feature2(ws: Workspace, db: Path, say: Say) -> None:
    moved = switch(ws, branch="feature2", progress=lambda line: say(f"   {line}"))
    plan = moved.plan
    reverted_losses = [d.target for d in plan.destructive if d.direction == "downgrade"]
    say(
        f"   plan: common {', '.join(plan.common)}; revert {', '.join(plan.downgrade)} "
        f"(loses {', '.join(reverted_losses) or 'nothing'}); "
        f"apply {', '.join(plan.upgrade)}"
    )
    say(f"   snapshot of feature1 saved as '{moved.saved}'")
    say(
        f"   now on feature2: tables {', '.join(_tables(db))}; users columns "
        f"{', '.join(_columns(db))}"
    )


def _back_through_the_hook(repo: GitRepo, db: Path, say: Say) -> bool:
    """``git checkout feature1`` with the hooks installed; whether the row came back."""
    for line in repo.checkout("feature1", quiet=False).strip().splitlines():
        say(f"   {line}")
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name, email FROM users").fetchall()
    kept = rows == [("ann", "ann@example.com")]
    say(f"   users: {rows}; tables {', '.join(_tables(db))}")
    say(
        '\nThe e-mail address survived the round trip: no data lost, no "Can\'t locate revision".'
        if kept
        else "\nThe e-mail address was NOT kept."
    )
    return kept
