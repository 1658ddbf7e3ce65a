"""merge-heads on real git repositories holding real ``alembic init`` projects: the seed
scenario (feature1 adds users.email, feature2 adds posts, both merged into main) closed by
a merge revision and by --rebase after ``git merge`` and after ``git rebase``."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import warm

from branchmig.errors import UsageError
from branchmig.merge import merge_heads, repoint_down_revision
from branchmig.workspace import Workspace

BIN = Path(sys.executable).parent
BRANCHMIG = warm.BRANCHMIG
ALEMBIC = str(BIN / "alembic")

BASE, EMAIL, POSTS, TAGS = "a0base", "b1email", "c2posts", "d3tags"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_EDITOR="true",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def git(repo: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=repo, env=_env(), capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return warm.command(args, cwd=repo, env=_env())


def alembic(repo: Path, *args: str) -> str:
    proc = run(repo, ALEMBIC, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def add_revision(
    repo: Path,
    rev_id: str,
    message: str,
    up: str,
    down: str,
    *,
    head: str = "head",
    label: str | None = None,
) -> Path:
    """A revision written by ``alembic revision`` (the real template), bodies filled in."""
    extra = ["--head", head] + (["--branch-label", label] if label else [])
    alembic(repo, "revision", "-m", message, "--rev-id", rev_id, *extra)
    path = next((repo / "alembic" / "versions").glob(f"{rev_id}_*.py"))
    text = path.read_text()
    text = text.replace('"""Upgrade schema."""\n    pass', f'"""Upgrade schema."""\n    {up}')
    text = text.replace('"""Downgrade schema."""\n    pass', f'"""Downgrade schema."""\n    {down}')
    path.write_text(text)
    return path


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def db_versions(repo: Path) -> list[str]:
    with sqlite3.connect(repo / "app.db") as conn:
        return sorted(r[0] for r in conn.execute("SELECT version_num FROM alembic_version"))


def tables(repo: Path) -> set[str]:
    with sqlite3.connect(repo / "app.db") as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def script_of(repo: Path, rev_id: str) -> Path:
    return next((repo / "alembic" / "versions").glob(f"{rev_id}_*.py"))


ADD_EMAIL = (
    'with op.batch_alter_table("users") as b:\n'
    '        b.add_column(sa.Column("email", sa.String(100)))'
)
DROP_EMAIL = 'with op.batch_alter_table("users") as b:\n        b.drop_column("email")'


def new_alembic_repo(repo: Path) -> None:
    """An empty git repository holding ``alembic init`` on sqlite:///app.db."""
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "commit.gpgsign", "false")
    alembic(repo, "init", "alembic")
    ini = repo / "alembic.ini"
    ini.write_text(
        re.sub(r"(?m)^sqlalchemy\.url = .*$", "sqlalchemy.url = sqlite:///app.db", ini.read_text())
    )
    (repo / ".gitignore").write_text("app.db\n__pycache__/\n")


# -- starting states: each is built once per session (real ``alembic`` subprocesses), and every
# test gets its own copy. SQLite is ``sqlite:///app.db`` (relative), so a copy's database is
# its own; no state installs hooks or has worktrees, and ``_template`` checks that nothing
# in it names its own folder.


def _template(path: Path) -> Path:
    """A finished template: nothing in it (outside git's compressed objects) holds its
    absolute path, so a copy never points back at it."""
    needle = str(path).encode()
    for file in path.rglob("*"):
        if file.is_file() and not file.is_symlink() and "objects" not in file.parts:
            assert needle not in file.read_bytes(), f"{file} names its template's folder"
    assert not (path / ".git" / "worktrees").exists()
    return path


def copy_state(template: Path, dest: Path) -> Path:
    """A fresh copy of a session-built state for one test (the template is never used
    directly, so tests stay independent)."""
    shutil.copytree(template, dest, symlinks=True)
    return dest


def build_two_feature_branches(repo: Path) -> Path:
    """main: base revision creating users; feature1: users.email; feature2: posts; main
    checked out, its database upgraded to the base revision."""
    new_alembic_repo(repo)
    add_revision(
        repo,
        BASE,
        "create users",
        'op.create_table("users", sa.Column("id", sa.Integer, primary_key=True))',
        'op.drop_table("users")',
    )
    commit(repo, "base")
    git(repo, "checkout", "-q", "-b", "feature1")
    add_revision(repo, EMAIL, "add email", ADD_EMAIL, DROP_EMAIL)
    commit(repo, "email")
    git(repo, "checkout", "-q", "main")
    git(repo, "checkout", "-q", "-b", "feature2")
    add_revision(
        repo,
        POSTS,
        "add posts",
        'op.create_table("posts", sa.Column("id", sa.Integer, primary_key=True))',
        'op.drop_table("posts")',
    )
    commit(repo, "posts")
    git(repo, "checkout", "-q", "main")
    alembic(repo, "upgrade", "head")
    return repo


@pytest.fixture(scope="session")
def _two_feature_branches_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("merge_two_features")
    return _template(build_two_feature_branches(base / "app"))


@pytest.fixture(scope="session")
def _both_features_merged_template(
    _two_feature_branches_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    repo = copy_state(
        _two_feature_branches_template, tmp_path_factory.mktemp("merge_both_merged") / "app"
    )
    git(repo, "merge", "-q", "feature1")
    git(repo, "merge", "-q", "--no-edit", "feature2")
    return _template(repo)


@pytest.fixture(scope="session")
def _feature2_rebased_template(
    _two_feature_branches_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    repo = copy_state(
        _two_feature_branches_template, tmp_path_factory.mktemp("merge_feature2_rebased") / "app"
    )
    git(repo, "merge", "-q", "feature1")
    git(repo, "checkout", "-q", "feature2")
    git(repo, "rebase", "-q", "main")
    return _template(repo)


@pytest.fixture
def main_at_base_with_two_feature_branches(
    _two_feature_branches_template: Path, tmp_path: Path
) -> Path:
    """main: base revision creating users; feature1: users.email; feature2: posts; main
    checked out, its database upgraded to the base revision."""
    return copy_state(_two_feature_branches_template, tmp_path / "app")


@pytest.fixture
def main_with_both_features_merged(_both_features_merged_template: Path, tmp_path: Path) -> Path:
    """main_at_base_with_two_feature_branches after ``git merge feature1`` then ``git
    merge feature2`` on main: two Alembic heads, email and posts."""
    return copy_state(_both_features_merged_template, tmp_path / "app")


@pytest.fixture
def feature2_rebased_on_main(_feature2_rebased_template: Path, tmp_path: Path) -> Path:
    """main fast-forwarded to feature1, then feature2 rebased onto it."""
    return copy_state(_feature2_rebased_template, tmp_path / "app")


def _other_lines(data: bytes) -> list[bytes]:
    return [
        ln
        for ln in data.splitlines(keepends=True)
        if not ln.startswith((b"down_revision", b"Revises:"))
    ]


# -- merge revision ---------------------------------------------------------------------


def test_merge_heads_writes_one_merge_revision_through_alembic_and_upgrades(
    main_with_both_features_merged: Path,
) -> None:
    repo = main_with_both_features_merged
    assert "Multiple head" not in alembic(repo, "heads")
    assert len(alembic(repo, "heads").split("\n")) == 3  # two heads + trailing newline

    proc = run(repo, BRANCHMIG, "merge-heads")

    assert proc.returncode == 0, proc.stderr
    written = [
        p
        for p in (repo / "alembic" / "versions").glob("*.py")
        if p.name.split("_")[0] not in {BASE, EMAIL, POSTS}
    ]
    assert len(written) == 1
    text = written[0].read_text()
    rev_id = re.search(r"^revision: str = '(\w+)'", text, re.M).group(1)  # type: ignore[union-attr]
    assert re.search(rf"^down_revision: .* = \('{EMAIL}', '{POSTS}'\)$", text, re.M)
    assert f"Revises: {EMAIL}, {POSTS}" in text
    assert '"""merge feature1 and feature2 heads' in text
    assert f"Wrote merge revision '{rev_id}'" in proc.stdout
    assert db_versions(repo) == [rev_id]
    assert {"users", "posts"} <= tables(repo)
    heads = alembic(repo, "heads").split()
    assert heads[0] == rev_id and len([h for h in heads if h != "(head)"]) == 1


def test_merge_heads_message_option_and_no_upgrade(main_with_both_features_merged: Path) -> None:
    repo = main_with_both_features_merged
    ws = Workspace.open(repo)
    out = merge_heads(ws, message="join them", upgrade=False)
    ws.close()
    assert out.heads_before == (EMAIL, POSTS) and out.upgraded == ()
    assert out.written is not None and out.revision is not None
    assert '"""join them' in (repo / out.written).read_text()
    assert db_versions(repo) == [BASE]
    assert out.move is None and "branchmig sync" in out.then


def test_check_against_fails_before_the_merge_and_passes_after_merge_heads(
    main_at_base_with_two_feature_branches: Path,
) -> None:
    repo = main_at_base_with_two_feature_branches
    git(repo, "merge", "-q", "feature1")
    before = run(repo, BRANCHMIG, "check", "--against", "feature2")
    assert before.returncode == 1, before.stdout + before.stderr

    git(repo, "merge", "-q", "--no-edit", "feature2")
    assert run(repo, BRANCHMIG, "merge-heads").returncode == 0
    commit(repo, "merge revision")

    after = run(repo, BRANCHMIG, "check", "--against", "feature2")
    assert after.returncode == 0, after.stdout + after.stderr


def test_three_heads_are_merged_in_one_revision(
    main_at_base_with_two_feature_branches: Path,
) -> None:
    repo = main_at_base_with_two_feature_branches
    git(repo, "checkout", "-q", "-b", "feature3")
    add_revision(
        repo,
        TAGS,
        "add tags",
        'op.create_table("tags", sa.Column("id", sa.Integer, primary_key=True))',
        'op.drop_table("tags")',
    )
    commit(repo, "tags")
    git(repo, "checkout", "-q", "main")
    for branch in ("feature1", "feature2", "feature3"):
        git(repo, "merge", "-q", "--no-edit", branch)

    ws = Workspace.open(repo)
    out = merge_heads(ws)
    ws.close()

    assert set(out.heads_before) == {EMAIL, POSTS, TAGS}
    assert out.written is not None
    text = (repo / out.written).read_text()
    down = re.search(r"^down_revision: .* = \((.*)\)$", text, re.M)
    assert down and {s.strip(" '") for s in down.group(1).split(",")} == {EMAIL, POSTS, TAGS}
    assert "merge feature1, feature2 and feature3 heads" in text
    assert db_versions(repo) == [out.revision]
    assert {"users", "posts", "tags"} <= tables(repo)


def test_one_head_is_nothing_to_merge(main_at_base_with_two_feature_branches: Path) -> None:
    repo = main_at_base_with_two_feature_branches
    before = sorted(p.name for p in (repo / "alembic" / "versions").iterdir())

    proc = run(repo, BRANCHMIG, "merge-heads")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"Nothing to merge: one head, '{BASE}'"
    assert sorted(p.name for p in (repo / "alembic" / "versions").iterdir()) == before


def test_dry_run_writes_nothing_and_leaves_the_database(
    main_with_both_features_merged: Path,
) -> None:
    repo = main_with_both_features_merged
    before = sorted(p.name for p in (repo / "alembic" / "versions").iterdir())

    proc = run(repo, BRANCHMIG, "merge-heads", "--dry-run")
    rebase = run(repo, BRANCHMIG, "merge-heads", "--dry-run", "--rebase")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(
        f"Dry run: would write a merge revision of '{EMAIL}', "
        f"'{POSTS}' (message 'merge feature1 and feature2 heads')"
    )
    assert rebase.returncode == 0, rebase.stderr
    assert f"would re-point '{EMAIL}'" in rebase.stdout and f"onto '{POSTS}'" in rebase.stdout
    assert sorted(p.name for p in (repo / "alembic" / "versions").iterdir()) == before
    assert git(repo, "status", "--porcelain") == ""
    assert db_versions(repo) == [BASE]


def test_json_output_is_one_object(main_with_both_features_merged: Path) -> None:
    import json

    proc = run(main_with_both_features_merged, BRANCHMIG, "merge-heads", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["heads_before"] == [EMAIL, POSTS]
    assert data["db_heads"] == [data["revision"]]
    # The upgrade's result, as sync --json gives it.
    move = data["move"]
    assert (move["before"], move["after"]) == ([BASE], data["db_heads"])
    assert set(move["upgrade"]) == {EMAIL, POSTS, data["revision"]}
    assert data["summary"].splitlines()[1].startswith("Database now at")


# -- rebase ---------------------------------------------------------------------------------


def test_rebase_after_git_merge_repoints_our_first_migration(
    main_with_both_features_merged: Path,
) -> None:
    """After `git merge feature2` on main, ours is HEAD^1 (main, which has feature1's
    email): email moves onto posts."""
    repo = main_with_both_features_merged
    email, posts = script_of(repo, EMAIL), script_of(repo, POSTS)
    email_before, posts_before = email.read_bytes(), posts.read_bytes()

    proc = run(repo, BRANCHMIG, "merge-heads", "--rebase")

    assert proc.returncode == 0, proc.stderr
    after = email.read_bytes()
    assert posts.read_bytes() == posts_before
    assert f"down_revision: Union[str, Sequence[str], None] = '{POSTS}'\n".encode() in after
    assert f"Revises: {POSTS}\n".encode() in after
    assert _other_lines(after) == _other_lines(email_before)
    assert len(after.splitlines()) == len(email_before.splitlines())
    rel = email.relative_to(repo).as_posix()
    # The upgrade's lines are a sync's: the snapshot it saved, what it ran, where to.
    said = proc.stdout.splitlines()
    assert re.fullmatch(r"Saved the database as snapshot 'b-feature2-[a-z0-9-]+'\.", said[1])
    assert said[:1] + said[2:] == [
        f"Re-pointed '{EMAIL}' ({rel}) from '{BASE}' onto '{POSTS}' (ours per the merge "
        "commit); history is linear.",
        f"Reverted 0, applied 2: sqlite:///app.db is at {EMAIL}.",
        f"Database now at '{EMAIL}'; commit it: git add {rel} && git commit",
    ]
    assert alembic(repo, "heads").split()[0] == EMAIL
    assert db_versions(repo) == [EMAIL]
    assert git(repo, "status", "--porcelain").split() == ["M", email.relative_to(repo).as_posix()]


def test_rebase_never_moves_a_migration_the_remote_default_branch_has(
    main_at_base_with_two_feature_branches: Path, tmp_path: Path
) -> None:
    """main, with feature1's email, is pushed; then `git merge feature2` on main. Ours is
    main, but email is on origin/main (deployed, maybe): posts moves onto email instead."""
    repo = main_at_base_with_two_feature_branches
    git(repo, "merge", "-q", "feature1")
    git(tmp_path, "clone", "-q", "--bare", str(repo), "origin.git")
    git(repo, "remote", "add", "origin", str(tmp_path / "origin.git"))
    git(repo, "fetch", "-q", "origin")
    git(repo, "merge", "-q", "--no-edit", "feature2")
    email, posts = script_of(repo, EMAIL), script_of(repo, POSTS)
    email_before = email.read_bytes()

    proc = run(repo, BRANCHMIG, "merge-heads", "--rebase")

    assert proc.returncode == 0, proc.stderr
    assert email.read_bytes() == email_before
    assert f"Revises: {EMAIL}\n".encode() in posts.read_bytes()
    rel = posts.relative_to(repo).as_posix()
    assert proc.stdout.splitlines()[0] == (
        f"Re-pointed '{POSTS}' ({rel}) from '{BASE}' onto '{EMAIL}' ('{EMAIL}' is on "
        "origin/main already); history is linear."
    )
    assert alembic(repo, "heads").split()[0] == POSTS
    assert db_versions(repo) == [POSTS]


def test_rebase_after_git_rebase_repoints_the_replayed_branch(
    feature2_rebased_on_main: Path,
) -> None:
    """After `git rebase main` on feature2, ours is the replayed feature2: posts moves."""
    repo = feature2_rebased_on_main
    email, posts = script_of(repo, EMAIL), script_of(repo, POSTS)
    email_before, posts_before = email.read_bytes(), posts.read_bytes()

    ws = Workspace.open(repo)
    out = merge_heads(ws, rebase=True)
    ws.close()

    assert (out.written, out.revision, out.rebased_onto) == (
        posts.relative_to(repo).as_posix(),
        POSTS,
        EMAIL,
    )
    assert email.read_bytes() == email_before
    after = posts.read_bytes()
    assert after == posts_before.replace(
        b"down_revision: Union[str, Sequence[str], None] = 'a0base'",
        f"down_revision: Union[str, Sequence[str], None] = '{EMAIL}'".encode(),
    ).replace(f"Revises: {BASE}\n".encode(), f"Revises: {EMAIL}\n".encode())
    assert after != posts_before
    assert "(ours per the rebase just done)" in out.summary
    assert out.upgraded == (POSTS,) and db_versions(repo) == [POSTS]


def test_rebase_during_a_rebase_in_progress_uses_orig_head(
    main_at_base_with_two_feature_branches: Path,
) -> None:
    """The post-rewrite hook runs while .git/rebase-merge still exists: a stopped
    interactive rebase is the same state."""
    repo = main_at_base_with_two_feature_branches
    git(repo, "merge", "-q", "feature1")
    git(repo, "checkout", "-q", "feature2")
    proc = subprocess.run(
        ["git", "rebase", "-i", "main"],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**_env(), "GIT_SEQUENCE_EDITOR": "sed -i -e 's/^pick/edit/'"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (repo / ".git" / "rebase-merge").is_dir()

    ws = Workspace.open(repo)
    out = merge_heads(ws, rebase=True, upgrade=False)
    ws.close()

    assert out.revision == POSTS and out.rebased_onto == EMAIL
    assert "(ours per the rebase in progress)" in out.summary


def test_rebase_during_a_conflicted_merge_uses_head_against_merge_head(
    main_at_base_with_two_feature_branches: Path,
) -> None:
    repo = main_at_base_with_two_feature_branches
    git(repo, "checkout", "-q", "feature2")
    (repo / "README").write_text("feature2\n")
    commit(repo, "readme 2")
    git(repo, "checkout", "-q", "feature1")
    (repo / "README").write_text("feature1\n")
    commit(repo, "readme 1")
    git(repo, "merge", "-q", "feature2", check=False)  # conflicts in README only
    assert (repo / ".git" / "MERGE_HEAD").exists()

    ws = Workspace.open(repo)
    out = merge_heads(ws, rebase=True, upgrade=False)
    ws.close()

    assert (out.revision, out.rebased_onto) == (EMAIL, POSTS)
    assert "(ours per the merge in progress)" in out.summary


def test_rebase_during_a_merge_refuses_changes_made_after_git_staged_its_own(
    main_at_base_with_two_feature_branches: Path,
) -> None:
    """git staged feature2's posts script for the merge: expected. Edited since, or a new
    file beside it, is the user's and would be mixed into the re-pointed script."""
    repo = main_at_base_with_two_feature_branches
    git(repo, "checkout", "-q", "feature2")
    (repo / "README").write_text("feature2\n")
    commit(repo, "readme 2")
    git(repo, "checkout", "-q", "feature1")
    (repo / "README").write_text("feature1\n")
    commit(repo, "readme 1")
    git(repo, "merge", "-q", "feature2", check=False)  # conflicts in README only
    posts = script_of(repo, POSTS)
    posts.write_text(posts.read_text() + "# local edit\n")
    (repo / "alembic" / "versions" / "notes.txt").write_text("todo\n")

    proc = run(repo, BRANCHMIG, "merge-heads", "--rebase", "--no-upgrade")

    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"branchmig: Uncommitted changes in the versions folder "
        f"({posts.relative_to(repo).as_posix()}, alembic/versions/notes.txt); commit them "
        "first, then run: branchmig merge-heads --rebase"
    ]


def test_rebase_reverts_and_reapplies_a_repointed_revision_the_database_had(
    main_at_base_with_two_feature_branches: Path,
) -> None:
    repo = main_at_base_with_two_feature_branches
    git(repo, "checkout", "-q", "feature1")
    alembic(repo, "upgrade", "head")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "feature1")
    git(repo, "merge", "-q", "--no-edit", "feature2")
    assert db_versions(repo) == [EMAIL]
    lines: list[str] = []

    ws = Workspace.open(repo)
    out = merge_heads(ws, rebase=True, progress=lines.append)
    ws.close()

    assert out.revision == EMAIL and out.upgraded == (EMAIL,)
    steps = [ln.split() for ln in lines if ln.strip().startswith(("reverted", "applied"))]
    assert steps == [["reverted", EMAIL], ["applied", POSTS], ["applied", EMAIL]]
    assert db_versions(repo) == [EMAIL]
    assert "posts" in tables(repo)


def test_rebase_with_three_heads_is_a_usage_error(
    main_at_base_with_two_feature_branches: Path,
) -> None:
    repo = main_at_base_with_two_feature_branches
    git(repo, "checkout", "-q", "-b", "feature3")
    add_revision(repo, TAGS, "add tags", "pass", "pass")
    commit(repo, "tags")
    git(repo, "checkout", "-q", "main")
    for branch in ("feature1", "feature2", "feature3"):
        git(repo, "merge", "-q", "--no-edit", branch)

    proc = run(repo, BRANCHMIG, "merge-heads", "--rebase")

    assert proc.returncode == 2
    assert "--rebase linearises two heads; there are 3" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_rebase_refuses_uncommitted_changes_in_the_versions_folder(
    main_with_both_features_merged: Path,
) -> None:
    repo = main_with_both_features_merged
    posts = script_of(repo, POSTS)
    posts.write_text(posts.read_text() + "# local edit\n")

    proc = run(repo, BRANCHMIG, "merge-heads", "--rebase")

    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"branchmig: Uncommitted changes in the versions folder "
        f"({posts.relative_to(repo).as_posix()}); commit them first, then run: "
        "branchmig merge-heads --rebase"
    ]
    assert f"'{BASE}'".encode() in script_of(repo, EMAIL).read_bytes()


def test_repoint_keeps_every_other_byte_and_the_quote_style() -> None:
    data = (
        b'"""x\r\n\r\nRevision ID: abc\r\nRevises: old1\r\nCreate Date: now\r\n"""\r\n'
        b'revision = "abc"\r\ndown_revision = "old1"  # parent\r\n'
        b"def upgrade():\r\n    s = \"down_revision = 'old1'\"\r\n"
    )
    out = repoint_down_revision(data, "new2")
    assert out == data.replace(b'down_revision = "old1"', b'down_revision = "new2"').replace(
        b"Revises: old1", b"Revises: new2"
    )
    tuple_form = b"revision = 'r'\ndown_revision = ('old',)\n"
    assert repoint_down_revision(tuple_form, "n") == b"revision = 'r'\ndown_revision = ('n',)\n"
    none_form = b'"""m\n\nRevises: \n"""\nrevision: str = "r"\ndown_revision: str | None = None\n'
    assert repoint_down_revision(none_form, "n") == (
        b'"""m\n\nRevises: n\n"""\nrevision: str = "r"\ndown_revision: str | None = "n"\n'
    )


# -- bad input -------------------------------------------------------------------------------


def test_conflicts_in_the_versions_folder_are_one_line_exit_1(
    main_at_base_with_two_feature_branches: Path,
) -> None:
    repo = main_at_base_with_two_feature_branches
    for branch, column in (("feature1", "a"), ("feature2", "b")):
        git(repo, "checkout", "-q", branch)
        path = script_of(repo, BASE)
        path.write_text(
            path.read_text().replace(
                "primary_key=True)", f'primary_key=True), sa.Column("{column}", sa.Integer)'
            )
        )
        commit(repo, f"edit base on {branch}")
    git(repo, "merge", "-q", "--no-edit", "feature1", check=False)
    assert "<<<<<<<" in script_of(repo, BASE).read_text()

    proc = run(repo, BRANCHMIG, "merge-heads")

    assert proc.returncode == 1
    base_rel = script_of(repo, BASE).relative_to(repo).as_posix()
    assert proc.stderr.strip().splitlines() == [
        f"branchmig: Merge conflicts in the versions folder ({base_rel}); resolve them and "
        "'git add' the files, then run: branchmig merge-heads"
    ]

    git(repo, "add", base_rel)  # staged, markers still in the file
    again = run(repo, BRANCHMIG, "merge-heads")
    assert again.returncode == 1 and "Merge conflicts" in again.stderr
    assert "Traceback" not in again.stderr


def test_a_named_head_not_in_the_working_tree_is_refused(
    main_with_both_features_merged: Path,
) -> None:
    ws = Workspace.open(main_with_both_features_merged)
    with pytest.raises(UsageError, match="'nothere' is not a revision in the working tree"):
        merge_heads(ws, heads=[EMAIL, "nothere"])
    with pytest.raises(UsageError, match=f"'{BASE}' is not a head"):
        merge_heads(ws, heads=[EMAIL, BASE])
    ws.close()


# -- intentional heads -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _expand_and_contract_heads_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("merge_labels") / "labels"
    new_alembic_repo(repo)
    (repo / "pyproject.toml").write_text("[tool.branchmig]\nexpected_heads = 2\n")
    add_revision(repo, "e1", "expand", "pass", "pass", head="base", label="expand")
    add_revision(repo, "k1", "contract", "pass", "pass", head="base", label="contract")
    commit(repo, "two branches on purpose")
    return _template(repo)


@pytest.fixture
def repo_with_expand_and_contract_heads(
    _expand_and_contract_heads_template: Path, tmp_path: Path
) -> Path:
    """Two heads on purpose: e1 under label expand, k1 under label contract (both on
    base); pyproject says expected_heads = 2."""
    return copy_state(_expand_and_contract_heads_template, tmp_path / "labels")


def test_heads_under_separate_branch_labels_are_left_alone(
    repo_with_expand_and_contract_heads: Path,
) -> None:
    repo = repo_with_expand_and_contract_heads
    before = sorted(p.name for p in (repo / "alembic" / "versions").iterdir())

    proc = run(repo, BRANCHMIG, "merge-heads")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(
        "Nothing to merge: heads 'e1' (expand), 'k1' (contract) are under separate branch labels"
    )
    assert sorted(p.name for p in (repo / "alembic" / "versions").iterdir()) == before
    assert run(repo, BRANCHMIG, "check").returncode == 0


def test_two_heads_under_one_label_are_merged_and_others_left_alone(
    repo_with_expand_and_contract_heads: Path,
) -> None:
    repo = repo_with_expand_and_contract_heads
    git(repo, "checkout", "-q", "-b", "feature")
    add_revision(repo, "e2a", "expand a", "pass", "pass", head="expand@head")
    commit(repo, "e2a")
    git(repo, "checkout", "-q", "main")
    add_revision(repo, "e2b", "expand b", "pass", "pass", head="expand@head")
    commit(repo, "e2b")
    git(repo, "merge", "-q", "--no-edit", "feature")

    ws = Workspace.open(repo)
    out = merge_heads(ws, upgrade=False)
    ws.close()

    assert set(out.heads_before) == {"e2a", "e2b", "k1"}
    assert out.written is not None
    text = (repo / out.written).read_text()
    assert "'e2a'" in text and "'e2b'" in text and "'k1'" not in text


def test_named_heads_under_separate_labels_are_merged(
    repo_with_expand_and_contract_heads: Path,
) -> None:
    ws = Workspace.open(repo_with_expand_and_contract_heads)
    out = merge_heads(ws, heads=["e1", "k1"], message="join", upgrade=False)
    ws.close()
    assert out.revision is not None and out.summary.startswith(
        f"Wrote merge revision '{out.revision}'"
    )


# -- the post-merge hook ---------------------------------------------------------------------


def test_post_merge_hook_with_on_merge_merge_closes_the_merge(
    main_at_base_with_two_feature_branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from branchmig.hookrun import run as run_hook

    repo = main_at_base_with_two_feature_branches
    (repo / "pyproject.toml").write_text('[tool.branchmig]\non_merge = "merge"\n')
    commit(repo, "on_merge")
    git(repo, "merge", "-q", "feature1")
    git(repo, "merge", "-q", "--no-edit", "feature2")

    assert run_hook("post-merge", ["0"], cwd=repo) == 0

    err = capsys.readouterr().err
    assert "branchmig: Wrote merge revision" in err, err
    heads = alembic(repo, "heads").split()
    assert len([h for h in heads if h != "(head)"]) == 1
    assert db_versions(repo) == [heads[0]]
    # The upgrade said as the hook says a sync, before the merge's own lines.
    said = err.splitlines()
    upgraded = f"branchmig: sqlite:///app.db: reverted 0, applied 3; now at {heads[0]}"
    now = f"branchmig: Database now at '{heads[0]}'; commit it: git add "
    assert said.index(upgraded) < next(i for i, x in enumerate(said) if x.startswith(now)), err


def test_post_merge_hook_with_on_merge_rebase_linearises_a_feature_branch(
    main_at_base_with_two_feature_branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On feature2, `git merge main` (which has feature1): ours is feature2, so posts
    moves onto email."""
    from branchmig.hookrun import run as run_hook

    repo = main_at_base_with_two_feature_branches
    (repo / "pyproject.toml").write_text('[tool.branchmig]\non_merge = "rebase"\n')
    commit(repo, "on_merge")
    git(repo, "merge", "-q", "feature1")
    git(repo, "checkout", "-q", "feature2")
    git(repo, "merge", "-q", "--no-edit", "main")

    assert run_hook("post-merge", ["0"], cwd=repo) == 0

    err = capsys.readouterr().err
    assert f"branchmig: Re-pointed '{POSTS}'" in err and f"onto '{EMAIL}'" in err, err
    assert alembic(repo, "heads").split()[0] == POSTS
    assert db_versions(repo) == [POSTS]


def test_a_staged_rename_in_the_versions_folder_is_named_whole(
    main_with_both_features_merged: Path,
) -> None:
    """Porcelain records a rename as two paths: the message names the new one intact
    (it used to say 'ld_name.py')."""
    repo = main_with_both_features_merged
    posts = script_of(repo, POSTS)
    git(repo, "mv", str(posts.relative_to(repo)), "alembic/versions/new_name.py")

    proc = run(repo, BRANCHMIG, "merge-heads", "--rebase")

    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "branchmig: Uncommitted changes in the versions folder (alembic/versions/new_name.py); "
        "commit them first, then run: branchmig merge-heads --rebase"
    ]
    assert f"'{BASE}'".encode() in script_of(repo, EMAIL).read_bytes()  # nothing re-pointed
