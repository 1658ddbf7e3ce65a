"""The analyzer's commands through the real console script: heads, plan, check."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from gitutil import BRANCHMIG, Repo, git_env, init_repo, run_branchmig, script_text


def ok_json(cwd: Path, *args: str) -> dict[str, object]:
    proc = run_branchmig(cwd, *args)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, object] = json.loads(proc.stdout)
    return data


def fails(cwd: Path, *args: str, code: int) -> str:
    """The one line on stderr of a command that fails with ``code``."""
    proc = run_branchmig(cwd, *args)
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


# -- heads ----------------------------------------------------------------------------------


def test_heads_json_of_worktree_and_refs(repo_with_two_feature_branches: Repo) -> None:
    root = repo_with_two_feature_branches.root
    assert ok_json(root, "heads", "--json") == {"ref": "WORKTREE", "heads": ["a3"]}
    assert ok_json(root, "heads", "feature1", "--json") == {"ref": "feature1", "heads": ["f1b"]}
    assert ok_json(root / "alembic", "heads", "feature2", "--json") == {
        "ref": "feature2",
        "heads": ["f2a"],
    }


def test_heads_human_output(repo_with_merged_feature_branches: Repo) -> None:
    proc = run_branchmig(repo_with_merged_feature_branches.root, "heads")
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == [
        "f1b (head)  alembic/versions/f1b_step.py",
        "f2a (head)  alembic/versions/f2a_step.py",
    ]


def test_heads_warns_about_non_literal_labels(empty_alembic_repo: Repo) -> None:
    repo = empty_alembic_repo
    repo.write("e1", None)
    path = repo.versions / "e1_step.py"
    path.write_text(
        path.read_text().replace(
            "branch_labels: Union[str, Sequence[str], None] = None",
            "branch_labels: Union[str, Sequence[str], None] = (EXPAND,)",
        )
    )
    proc = run_branchmig(repo.root, "heads", "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["heads"] == ["e1"]
    assert proc.stderr.startswith("warning: alembic/versions/e1_step.py:")
    assert "branch_labels is not a literal ((EXPAND,)); treated as unknown" in proc.stderr


# -- plan -----------------------------------------------------------------------------------


def test_plan_between_feature_branches(repo_with_two_feature_branches: Repo) -> None:
    data = ok_json(repo_with_two_feature_branches.root, "plan", "feature1", "feature2", "--json")
    lines = [d.pop("line") for d in data["destructive"] + data["batch_needed"]]
    assert all(isinstance(n, int) and n > 0 for n in lines)
    warnings = data.pop("warnings")
    assert data == {
        "from": "feature1",
        "to": "feature2",
        "common": ["a3"],
        "downgrade": ["f1b", "f1a"],
        "upgrade": ["f2a"],
        "changed": [],
        "destructive": [
            {
                "revision": "f1b",
                "operation": "drop_table",
                "target": "orders",
                "direction": "downgrade",
            },
            {
                "revision": "f1a",
                "operation": "drop_column",
                "target": "users.email",
                "direction": "downgrade",
            },
        ],
        # f1a's downgrade drops a column outside batch mode, but one no script indexed
        # or constrained: SQLite 3.35+ drops it in place. (Nor is the project on SQLite.)
        "batch_needed": [],
    }
    assert warnings == []


def test_plan_to_the_working_tree_with_a_rebased_script(
    repo_with_two_feature_branches: Repo,
) -> None:
    repo = repo_with_two_feature_branches
    repo.checkout("feature2")
    repo.git("tag", "feature2-applied")
    repo.git("rebase", "-q", "feature1")
    repo.write("f2a", "f1b", downgrade='op.drop_table("invoices")')  # uncommitted fix-up
    data = ok_json(repo.root, "plan", "feature2-applied", ".", "--json")
    assert data["to"] == "WORKTREE"
    assert (data["common"], data["downgrade"], data["upgrade"], data["changed"]) == (
        ["a3"],
        ["f2a"],
        ["f1a", "f1b", "f2a"],
        ["f2a"],
    )
    assert data["destructive"] == [
        {
            "revision": "f2a",
            "operation": "drop_table",
            "target": "invoices",
            "line": 26,
            "direction": "downgrade",
        }
    ]


def test_plan_human_output(repo_with_two_feature_branches: Repo) -> None:
    proc = run_branchmig(repo_with_two_feature_branches.root, "plan", "feature1", "main")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "From feature1 to main:",
        "  common:    a3",
        "  downgrade: f1b -> f1a",
        "  upgrade:   -",
        "  loses data: f1b: downgrade drop_table orders",
        "  loses data: f1a: downgrade drop_column users.email",
    ]


def test_plan_names_what_the_upgrades_lose(repo_with_two_feature_branches: Repo) -> None:
    """An upgrade that drops a column and rewrites values loses the rows of the branch
    being left as surely as a downgrade: plan names it, in text, JSON and markdown."""
    repo = repo_with_two_feature_branches
    repo.checkout("feature2")
    repo.write(
        "f2b",
        "f2a",
        upgrade='op.drop_column("transaction", "remote_addr")\n'
        "    op.execute(\"UPDATE users SET pref = 'none' WHERE pref = 'off'\")",
    )
    repo.commit("feature2: drops and rewrites")
    repo.checkout("main")
    proc = run_branchmig(repo.root, "plan", "main", "feature2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-2:] == [
        "  loses data: f2b: upgrade drop_column transaction.remote_addr",
        "  loses data: f2b: upgrade execute UPDATE users SET pref = 'none' WHERE pref = 'off'",
    ]
    data = ok_json(repo.root, "plan", "main", "feature2", "--json")
    assert [(d["revision"], d["operation"], d["direction"]) for d in data["destructive"]] == [
        ("f2b", "drop_column", "upgrade"),
        ("f2b", "execute", "upgrade"),
    ]
    data = ok_json(repo.root, "plan", "feature1", "feature2", "--json")
    assert [(d["revision"], d["direction"]) for d in data["destructive"]] == [
        ("f1b", "downgrade"),
        ("f1a", "downgrade"),
        ("f2b", "upgrade"),
        ("f2b", "upgrade"),
    ]
    proc = run_branchmig(repo.root, "plan", "feature1", "feature2", "--format", "markdown")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("2 downgrades and 1 upgrade lose data"), lines[0]
    assert "| 4 | upgrade | `f2b` | ⚠️ `drop_column` transaction.remote_addr<br>" in proc.stdout


# -- check ----------------------------------------------------------------------------------


def test_check_passes_with_one_head(repo_with_linear_history: Repo) -> None:
    proc = run_branchmig(repo_with_linear_history.root, "check")
    assert (proc.returncode, proc.stdout) == (0, "1 head: ok\n")


def test_check_fails_with_two_heads(repo_with_merged_feature_branches: Repo) -> None:
    line = fails(repo_with_merged_feature_branches.root, "check", code=1)
    assert line == (
        "branchmig: 2 heads in the working tree: 'f1b' (alembic/versions/f1b_step.py), "
        "'f2a' (alembic/versions/f2a_step.py). "
        "Run: branchmig merge-heads (or branchmig merge-heads --rebase)"
    )


def test_check_against_a_branch_before_and_after_the_fix(
    repo_with_two_feature_branches: Repo,
) -> None:
    repo = repo_with_two_feature_branches
    repo.checkout("feature2")
    line = fails(repo.root, "check", "--against", "feature1", code=1)
    assert line == (
        "branchmig: Merging 'feature1' would leave 2 heads: "
        "'f2a' (alembic/versions/f2a_step.py), 'f1b' (alembic/versions/f1b_step.py). "
        "Before merging, set down_revision of your first new migration to 'f1b'"
    )
    repo.write("f2a", "f1b")  # the fix the message asks for: f1b is only on feature1
    proc = run_branchmig(repo.root, "check", "--against", "feature1")
    assert (proc.returncode, proc.stdout) == (
        0,
        "your migrations build on 'feature1'; merging it keeps 1 head: ok\n",
    )
    # Without --against, the parent only feature1 has is an error.
    assert fails(repo.root, "check", code=1).startswith("branchmig: Revision 'f2a'")
    data = json.loads(run_branchmig(repo.root, "check", "--against", "feature1", "--json").stdout)
    assert data["ok"] is True and data["merged_heads"] == ["f2a"]


def test_check_against_a_merged_branch_passes(repo_with_two_feature_branches: Repo) -> None:
    repo = repo_with_two_feature_branches
    repo.git("merge", "-q", "--no-edit", "feature1")
    proc = run_branchmig(repo.root, "check", "--against", "feature1")
    assert (proc.returncode, proc.stdout) == (0, "1 head; merging 'feature1' keeps 1: ok\n")


def test_check_against_a_ref_with_a_duplicate_revision_fails_as_heads_does(
    repo_with_linear_history: Repo,
) -> None:
    repo = repo_with_linear_history
    repo.checkout("dup", new=True)
    repo.write("a3", "a2", name="a3_again.py")  # the same id in a second file
    repo.commit("a3 twice")
    repo.checkout("main")
    said = fails(repo.root, "heads", "dup", code=1)
    assert "defined twice" in said
    assert fails(repo.root, "check", "--against", "dup", code=1) == said


def test_check_honours_expected_heads(repo_with_merged_feature_branches: Repo) -> None:
    root = repo_with_merged_feature_branches.root
    (root / "pyproject.toml").write_text("[tool.branchmig]\nexpected_heads = 2\n")
    assert run_branchmig(root, "check").returncode == 0


# -- bad input: one line, an exit code, no traceback ----------------------------------------


def test_syntax_error_in_a_header(empty_alembic_repo: Repo) -> None:
    repo = empty_alembic_repo
    (repo.versions / "bad_step.py").write_text("revision = 'bad'\ndown_revision = ('a',\n")
    line = fails(repo.root, "heads", code=1)
    assert line.startswith(
        "branchmig: alembic/versions/bad_step.py:2: cannot parse the 'down_revision' header"
    )


def test_a_script_that_does_not_parse_and_has_no_revision_fails_as_alembic_fails(
    empty_alembic_repo: Repo,
) -> None:
    """A migration being written (no header yet, a syntax error): Alembic fails loading
    the versions folder, and so does branchmig, rather than leave it out of the graph."""
    repo = empty_alembic_repo
    repo.write("a1", None)
    (repo.versions / "wip_step.py").write_text("from alembic import op\n\ndef upgrade(:\n")
    assert fails(repo.root, "heads", code=1) == (
        "branchmig: alembic/versions/wip_step.py:3: invalid syntax; Alembic cannot load this "
        "script, and no 'revision' can be read from it: fix the script (or move it out of "
        "the versions folder)"
    )


def test_non_literal_revision(empty_alembic_repo: Repo) -> None:
    repo = empty_alembic_repo
    (repo.versions / "bad_step.py").write_text("revision = make_id()\ndown_revision = None\n")
    assert fails(repo.root, "heads", code=1) == (
        "branchmig: alembic/versions/bad_step.py:1: revision is not a literal (make_id()); "
        "branchmig reads headers without importing the script, so write the value itself"
    )


def test_cycle(empty_alembic_repo: Repo) -> None:
    repo = empty_alembic_repo
    repo.write("a", None)
    repo.write("b", ("a", "c"))
    repo.write("c", "b")
    line = fails(repo.root, "heads", code=1)
    assert line.startswith("branchmig: Revisions form a cycle: ")
    assert "'alembic/versions/b_step.py'" in line


def test_duplicate_id(empty_alembic_repo: Repo) -> None:
    repo = empty_alembic_repo
    repo.write("a", None)
    repo.write("b", "a", name="b_one.py")
    repo.write("b", "a", name="b_two.py")
    assert fails(repo.root, "heads", code=1) == (
        "branchmig: Revision 'b' is defined twice: in 'alembic/versions/b_one.py' and "
        "'alembic/versions/b_two.py'; give one of them a new id"
    )


def test_missing_parent(empty_alembic_repo: Repo) -> None:
    repo = empty_alembic_repo
    repo.write("b", "gone")
    assert fails(repo.root, "heads", code=1) == (
        "branchmig: Revision 'b' (alembic/versions/b_step.py) has down_revision 'gone', "
        "which is in no script"
    )


def test_unknown_ref(repo_with_linear_history: Repo) -> None:
    assert fails(repo_with_linear_history.root, "heads", "no-such-branch", code=2) == (
        "branchmig: Unknown git ref 'no-such-branch': no branch, tag or commit of that name "
        "(see 'git branch -a')"
    )
    assert fails(repo_with_linear_history.root, "plan", "main", "nope", code=2).startswith(
        "branchmig: Unknown git ref 'nope'"
    )


def test_not_a_git_repository(tmp_path: Path) -> None:
    line = fails(tmp_path, "heads", code=2)  # a usage error, as the README says
    assert line == (
        f"branchmig: '{tmp_path}' is not inside a git repository (git init, or cd into one)"
    )


def test_no_project(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "bare")
    line = fails(root, "check", code=2)
    assert line.startswith(f"branchmig: No Alembic project in '{root}'")


def test_config_option(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "p")
    from alembic import command
    from alembic.config import Config

    (root / "conf").mkdir()
    command.init(Config(str(root / "conf" / "db.ini")), str(root / "db"))
    (root / "db" / "versions" / "x1_step.py").write_text(script_text("x1", None))
    assert ok_json(root, "-c", "conf/db.ini", "heads", "--json")["heads"] == ["x1"]
    line = fails(root, "-c", "missing.ini", "heads", code=2)
    assert line == f"branchmig: No such config file: '{root / 'missing.ini'}'"


@pytest.mark.parametrize("ref", ["HEAD", "."])
def test_empty_history_has_no_heads(empty_alembic_repo: Repo, ref: str) -> None:
    assert ok_json(empty_alembic_repo.root, "heads", ref, "--json")["heads"] == []


def test_heads_answers_from_memory_only_while_the_scripts_are_unchanged(
    repo_with_two_feature_branches: Repo,
) -> None:
    import os
    import time

    repo = repo_with_two_feature_branches
    repo.checkout("feature1")
    old = time.time() - 60  # older than the racy window, so the stats are trusted
    for path in (repo.root / "alembic" / "versions").glob("*.py"):
        os.utime(path, (old, old))
    first = ok_json(repo.root, "heads", "--json")
    assert ok_json(repo.root, "heads", "--json") == first
    assert (repo.root / ".git" / "branchmig" / "cache" / "heads.json").is_file()
    new = repo.write("f1c", "f1b")  # untracked, then aged like the others
    os.utime(new, (old, old))
    assert ok_json(repo.root, "heads", "--json")["heads"] == ["f1c"]
    assert ok_json(repo.root, "heads", "feature2", "--json")["heads"] == ["f2a"]
    repo.commit("f1c")
    assert ok_json(repo.root, "heads", "HEAD", "--json")["heads"] == ["f1c"]
    assert ok_json(repo.root, "heads", "HEAD~1", "--json")["heads"] == first["heads"]


def test_errors_under_json_are_one_json_object_on_stdout_too(tmp_path: Path) -> None:
    proc = run_branchmig(tmp_path, "heads", "--json")
    assert proc.returncode == 2
    assert json.loads(proc.stdout) == {
        "error": f"'{tmp_path}' is not inside a git repository (git init, or cd into one)",
        "exit_code": 2,
        "kind": "NotARepositoryError",
    }
    assert proc.stderr.startswith("branchmig: ")


def test_an_unknown_setting_suggests_the_closest_key(repo_with_linear_history: Repo) -> None:
    root = repo_with_linear_history.root
    (root / "pyproject.toml").write_text('[tool.branchmig]\nsnapshot = "always"\n')
    line = fails(root, "heads", code=2)
    assert "Unknown key 'snapshot'" in line and "did you mean 'snapshots'?" in line, line


@pytest.mark.parametrize("form", [["heads"], ["heads", "--json"]])
@pytest.mark.parametrize("state", ["two heads", "a warning", "no revisions"])
def test_a_remembered_heads_answer_is_printed_without_the_cli_exactly_as_it(
    empty_alembic_repo: Repo, form: list[str], state: str
) -> None:
    """The second ``heads`` on unchanged scripts is answered before click is loaded (what
    a shell prompt asks each time): the same output, warnings and exit status as the
    CLI's first answer."""
    repo = empty_alembic_repo
    if state != "no revisions":
        repo.write("a1", None)
        repo.write("b1", None)
    if state == "a warning":
        path = repo.versions / "b1_step.py"
        path.write_text(
            path.read_text().replace(
                "branch_labels: Union[str, Sequence[str], None] = None",
                "branch_labels: Union[str, Sequence[str], None] = (EXPAND,)",
            )
        )
    first = run_branchmig(repo.root, *form)  # read through the CLI, and remembered
    second = run_branchmig(repo.root, *form)
    assert (second.returncode, second.stdout, second.stderr) == (
        first.returncode,
        first.stdout,
        first.stderr,
    )
    assert first.returncode == 0 and first.stdout
    timed = subprocess.run(
        [BRANCHMIG, *form],
        cwd=repo.root,
        env={**git_env(), "PYTHONPROFILEIMPORTTIME": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in timed.stderr.splitlines()}
    assert "branchmig.heads" in imported and "click" not in imported
    assert timed.stdout == first.stdout


def test_heads_with_anything_more_goes_through_the_cli(
    repo_with_two_feature_branches: Repo, tmp_path: Path
) -> None:
    root = repo_with_two_feature_branches.root
    run_branchmig(root, "heads")
    assert ok_json(root, "-q", "heads", "--json") == {"ref": "WORKTREE", "heads": ["a3"]}
    assert ok_json(root, "heads", "feature1", "--json")["heads"] == ["f1b"]
    assert "not inside a git repository" in fails(tmp_path, "heads", code=2)


def test_a_script_rewritten_in_place_with_its_mtime_put_back_is_read_again(
    repo_with_two_feature_branches: Repo,
) -> None:
    """As git's index does, the remembered answer is trusted by size, mtime *and* ctime
    (with inode, device, mode and owner): a rewrite that keeps the size and puts the
    mtime back (``touch -r``, ``cp -p``, ``os.utime``) still changes the ctime."""
    import os
    import time

    repo = repo_with_two_feature_branches
    repo.checkout("feature1")
    time.sleep(2.1)  # past the racy window (mtime and ctime): the stats are trusted
    assert ok_json(repo.root, "heads", "--json")["heads"] == ["f1b"]
    assert ok_json(repo.root, "heads", "--json")["heads"] == ["f1b"]  # the remembered one
    path = repo.versions / "f1b_step.py"
    before = os.stat(path)
    text = path.read_bytes()
    rebased = text.replace(b"= 'f1a'", b"= 'a3' ")  # onto a3: the same size
    assert len(rebased) == len(text) and rebased != text
    with open(path, "r+b") as fh:  # in place: the same inode
        fh.write(rebased)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    assert sorted(ok_json(repo.root, "heads", "--json")["heads"]) == ["f1a", "f1b"]
