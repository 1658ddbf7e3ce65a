"""The pre-commit framework running the hooks of ``.pre-commit-hooks.yaml``: the real
``pre-commit`` tool installs its git hooks into the seed repository, then real ``git
checkout``, ``git merge`` and ``git commit`` run them.

The config is a ``repo: local`` one made of the manifest's own hooks, with ``language:
system`` (the only change) so that nothing is installed from the network: the ``python``
and ``branchmig`` they run are this virtual environment's, first on PATH."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml  # pre-commit's own dependency (pre-commit is in the test extra)
from e2e_projects import (
    BASE,
    BIN,
    EMAILS,
    F1,
    F2,
    Project,
    emails,
    script,
    sqlite_dump,
    sqlite_tables,
    sqlite_version,
)

MANIFEST = Path(__file__).resolve().parent.parent / ".pre-commit-hooks.yaml"
PRE_COMMIT = str(BIN / "pre-commit")
STAGES = ("pre-commit", "post-checkout", "post-merge", "post-rewrite", "post-commit")
MOVED = "reverted 1, applied 1"

# A hook of someone else's at post-checkout: it appends the revisions the database is at
# when it runs to .git/marker (so the order of the two hooks shows).
MARKER_HOOK = {
    "id": "marker",
    "name": "marker",
    "language": "system",
    "entry": "python -c \"import sqlite3; rows = sqlite3.connect('app.db').execute("
    "'SELECT version_num FROM alembic_version'); "
    "open('.git/marker', 'a').write(','.join(sorted(r[0] for r in rows)) + chr(10))\"",
    "pass_filenames": False,
    "always_run": True,
    "stages": ["post-checkout"],
}


def manifest_hooks() -> list[dict[str, Any]]:
    hooks: list[dict[str, Any]] = yaml.safe_load(MANIFEST.read_text())
    return [{**hook, "language": "system"} for hook in hooks]


def use_precommit(p: Project, *, extra: tuple[dict[str, Any], ...] = ()) -> None:
    """Write the config (untracked and ignored, so every branch has it) and run
    ``pre-commit install`` for every stage the manifest uses."""
    p.env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    p.env["PRE_COMMIT_HOME"] = str(p.root.parent / "pre-commit-home")
    config = {"repos": [{"repo": "local", "hooks": [*manifest_hooks(), *extra]}]}
    (p.root / ".pre-commit-config.yaml").write_text(json.dumps(config, indent=2))
    with (p.root / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write(".pre-commit-config.yaml\n")
    proc = p.run(PRE_COMMIT, "install", *(f"--hook-type={stage}" for stage in STAGES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def said(proc: Any) -> str:
    # git sends a post-* hook's stdout to its stderr; pre-commit's own lines too.
    return str(proc.stdout + proc.stderr)


def test_the_manifest_is_valid() -> None:
    proc = Project(MANIFEST.parent, "alembic", MANIFEST.parent, "").run(
        PRE_COMMIT, "validate-manifest", str(MANIFEST)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = [hook["id"] for hook in manifest_hooks()]
    assert ids == [
        "branchmig-check",
        "branchmig-post-checkout",
        "branchmig-post-merge",
        "branchmig-post-rewrite",
        "branchmig-post-commit",
    ]


def test_checkouts_through_precommit_carry_the_database(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    use_precommit(p)
    held = sqlite3.connect(p.db_path, isolation_level=None)
    try:
        out = p.checkout("feature2")
        assert "Traceback" not in said(out)
        assert "branchmig post-checkout" in said(out) and MOVED in said(out), said(out)
        assert sqlite_version(p.db_path) == {F2}
        assert "posts" in sqlite_tables(p.db_path)
        assert F2 in p.current().stdout

        out = p.checkout("feature1")
        assert "restored the snapshot of 'feature1'" in said(out), said(out)
        assert sqlite_version(p.db_path) == {F1}
        assert emails(held) == EMAILS

        # A file checkout and a new branch on the same commit leave it alone.
        before = sqlite_dump(p.db_path)
        migration = p.versions / f"{F1}_email.py"
        migration.write_text("# scribbled over\n")
        out = p.checkout("--", str(migration.relative_to(p.root)))
        assert MOVED not in said(out) and "restored" not in said(out)
        out = p.checkout("-b", "feature1-copy")
        assert MOVED not in said(out) and "restored" not in said(out)
        assert sqlite_dump(p.db_path) == before
        assert not p.journal.exists()

        # `branchmig switch` makes its own checkout (BRANCHMIG_SKIP_HOOK set): the hook
        # stays out of its way.
        p.checkout("feature1")
        p.ok("switch", "main")
        assert sqlite_version(p.db_path) == {BASE}
        assert not p.journal.exists()
        p.checkout("feature1")
        assert emails(held) == EMAILS
    finally:
        held.close()


def test_a_merge_through_precommit_applies_what_it_brought(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    use_precommit(p)
    proc = p.run("git", "merge", "-q", "--no-edit", "feature2")
    assert proc.returncode == 0, said(proc)
    assert "branchmig post-merge" in said(proc), said(proc)
    assert sqlite_version(p.db_path) == {F1, F2}
    assert "the merge left 2 migration heads" in said(proc), said(proc)


def test_a_rebase_through_precommit_moves_the_database_once_at_its_end(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    use_precommit(p)
    p.checkout("feature2")
    assert sqlite_version(p.db_path) == {F2}
    proc = p.run("git", "rebase", "feature1")
    assert proc.returncode == 0, said(proc)
    # The checkout the rebase starts with is skipped; post-rewrite acts once, at its end.
    assert said(proc).count("branchmig: sqlite:///app.db: ") == 1, said(proc)
    assert "reverted 0, applied 1" in said(proc), said(proc)
    assert "the rebase left 2 migration heads" in said(proc), said(proc)
    assert sqlite_version(p.db_path) == {F1, F2}


def test_a_commit_with_two_heads_fails_the_check_hook(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    use_precommit(p)
    head = p.git("rev-parse", "HEAD")
    rev = "f1b000000001"
    body = (
        "    op.create_table('notes', sa.Column('id', sa.Integer, primary_key=True))",
        "    op.drop_table('notes')",
    )
    path = p.write(f"{rev}_notes.py", script(rev, BASE, *body))
    p.git("add", str(path))
    proc = p.run("git", "commit", "-m", "notes, a second head")
    assert proc.returncode != 0, said(proc)
    assert "branchmig check" in said(proc) and "Failed" in said(proc), said(proc)
    assert rev in said(proc) and F1 in said(proc), said(proc)
    assert p.git("rev-parse", "HEAD") == head

    p.write(f"{rev}_notes.py", script(rev, F1, *body))
    p.git("add", str(path))
    proc = p.run("git", "commit", "-m", "notes, after email")
    assert proc.returncode == 0, said(proc)
    assert p.git("rev-parse", "HEAD") != head
    assert sqlite_version(p.db_path) == {F1}  # a plain commit moves no database


@pytest.mark.parametrize("first", ["pre-commit", "branchmig"])
def test_precommit_and_branchmig_install_together_move_the_database_once(
    db_at_feature1_head_with_emails: Project, first: str
) -> None:
    """Whichever is installed first, both tools' post-checkout hooks run; the one installed
    first runs first (branchmig chains pre-commit's; pre-commit runs branchmig's as its
    legacy hook), and branchmig's manifest hook steps aside for branchmig's own."""
    p = db_at_feature1_head_with_emails
    if first == "pre-commit":
        use_precommit(p, extra=(MARKER_HOOK,))
        out = p.ok("install")
        hooks = p.root / ".git" / "hooks"
        assert (hooks / "post-checkout.branchmig-chained").is_file()
    else:
        p.ok("install")
        use_precommit(p, extra=(MARKER_HOOK,))
        assert (p.root / ".git" / "hooks" / "post-checkout.legacy").is_file()
    marker = p.root / ".git" / "marker"

    out = p.checkout("feature2")
    assert "Traceback" not in said(out)
    assert said(out).count(MOVED) == 1, said(out)
    assert sqlite_version(p.db_path) == {F2}
    # The marker hook saw the database before the move when it ran first, after it else.
    assert marker.read_text() == (F1 if first == "pre-commit" else F2) + "\n"

    out = p.checkout("feature1")
    assert said(out).count("restored the snapshot of 'feature1'") == 1, said(out)
    assert sqlite_version(p.db_path) == {F1}
    with sqlite3.connect(p.db_path) as conn:
        assert emails(conn) == EMAILS
    assert len(marker.read_text().splitlines()) == 2


def test_a_missing_module_fails_the_hook_and_names_both_fixes(
    db_at_feature1_head_with_emails: Project,
) -> None:
    """Issue 24: a driver or app module missing from the hook's environment was "Passed"
    with only "check the database URL"."""
    p = db_at_feature1_head_with_emails
    env_py = p.root / "alembic" / "env.py"
    for branch in ("feature2", "feature1"):  # committed: pre-commit stashes what is not
        p.git("checkout", "-q", branch)
        env_py.write_text("import branchmig_missing_dependency  # noqa\n" + env_py.read_text())
        p.commit("env.py imports a module this environment lacks")
    use_precommit(p)
    proc = p.run("git", "checkout", "feature2")
    out = said(proc)
    assert "branchmig post-checkout" in out and "Failed" in out and "Passed" not in out, out
    assert "no 'branchmig_missing_dependency' module" in out, out
    assert "additional_dependencies" in out and "language: system" in out, out
    assert "Traceback" not in out
    assert p.branch() == "feature2"  # the checkout itself is done


def test_the_check_hook_runs_only_when_migrations_change_and_post_commit_is_quiet(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    use_precommit(p)
    (p.root / "notes.txt").write_text("not a migration\n")
    p.git("add", "notes.txt")
    proc = p.run("git", "commit", "-m", "notes")
    assert proc.returncode == 0, said(proc)
    check = next(line for line in said(proc).splitlines() if "branchmig check" in line)
    assert "Skipped" in check, said(proc)
    assert "hook id: branchmig-post-commit" not in said(proc), said(proc)

    rev = "f1b000000001"
    path = p.write(
        f"{rev}_notes.py",
        script(rev, F1, "    op.create_table('n', sa.Column('id', sa.Integer))", "    pass"),
    )
    p.git("add", str(path))
    proc = p.run("git", "commit", "-m", "a migration")
    assert proc.returncode == 0, said(proc)
    check = next(line for line in said(proc).splitlines() if "branchmig check" in line)
    assert "Passed" in check, said(proc)


def test_a_merge_concluded_by_commit_through_precommit_applies_what_it_brought(
    db_at_feature1_head_with_emails: Project,
) -> None:
    """post-commit acts on a merge commit (a conflict resolved, then ``git commit``),
    though it starts no Python for a plain commit."""
    p = db_at_feature1_head_with_emails
    for branch in ("feature2", "feature1"):
        p.git("checkout", "-q", branch)
        (p.root / "clash.txt").write_text(f"{branch}\n")
        p.commit(f"clash on {branch}")
    use_precommit(p)
    proc = p.run("git", "merge", "--no-edit", "feature2")
    assert proc.returncode != 0 and "CONFLICT" in said(proc), said(proc)
    assert sqlite_version(p.db_path) == {F1}
    (p.root / "clash.txt").write_text("both\n")
    p.git("add", "clash.txt")
    proc = p.run("git", "commit", "--no-edit")
    assert proc.returncode == 0, said(proc)
    assert sqlite_version(p.db_path) == {F1, F2}
