"""``status`` after a move that failed on a migration step (issue 20, item 7): it exits 1,
names the step and its fix, caps each unknown revision's refs, and never sends the user
to a sync that would run the same failing step; ``--json`` carries the failure as fields.
The next move that completes clears it."""

from __future__ import annotations

import json
from typing import Any

from e2e_projects import BIN, F1, F2, RAISING_F2, Project, script, sqlite_version

F1B = "f1b000000002"
UNBATCHED_DROP = '    op.drop_column("users", "phone")'


def _feature1_gains_an_indexed_phone(p: Project) -> None:
    """A revision whose downgrade SQLite refuses: the index on ``phone`` is left
    pointing at a dropped column."""
    p.write(
        f"{F1B}_phone.py",
        script(
            F1B,
            F1,
            '    op.add_column("users", sa.Column("phone", sa.String(20), nullable=True))\n'
            '    op.create_index("ix_users_phone", "users", ["phone"])',
            UNBATCHED_DROP,
        ),
    )
    p.commit("feature1: users.phone, indexed")


def _status_json(p: Project) -> tuple[int, dict[str, Any]]:
    proc = p.branchmig("status", "--json")
    data: dict[str, Any] = json.loads(proc.stdout)
    return proc.returncode, data


def test_after_the_hook_fails_a_downgrade_status_names_it_and_no_sync(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    _feature1_gains_an_indexed_phone(p)
    p.ok("sync")
    for n in range(14):  # a real project's release tags, all holding the revision
        p.git("tag", f"v1.{n}", "feature1")
    p.ok("install")
    out = p.checkout("main")
    assert f"Downgrade of '{F1B}' failed" in out.stderr
    assert sqlite_version(p.db_path) == {F1B}

    proc = p.branchmig("status")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert "branchmig sync" not in proc.stdout  # it would run the same downgrade
    unknown = [ln for ln in lines if ln.startswith("unknown:")]
    assert unknown == [
        f"unknown:    {F1B} (on feature1, v1.0, v1.1, v1.10, v1.11 and 10 more)",
        f"unknown:    {F1} (on feature1, v1.0, v1.1, v1.10, v1.11 and 10 more)",
    ], proc.stdout
    failed = next(ln for ln in lines if ln.startswith("failed:"))
    assert f"Downgrade of '{F1B}' failed: OperationalError" in failed
    assert "the database was put back as it was" in failed
    fix = next(ln for ln in lines if ln.startswith("fix:"))
    assert "batch.drop_column('phone')" in fix
    path = f"alembic/versions/{F1B}_phone.py"
    assert lines[-1] == (
        "next:       go back to a branch whose scripts fit the database (nothing runs): "
        f"branchmig switch feature1; there fix the downgrade of '{F1B}' ({path}), commit, "
        f"and run it by hand: alembic downgrade {F1B}-1; then check out 'main' again"
    ), proc.stdout

    code, data = _status_json(p)
    assert code == 1
    failure = data["failure"]
    assert failure["revision"] == F1B and failure["direction"] == "downgrade"
    assert failure["path"] == path and failure["to"] == "main"
    assert failure["cause"].startswith("OperationalError:")
    assert "batch_alter_table" in failure["fix"]
    assert failure["restored"] is True and failure["sync_repeats_it"] is True
    assert failure["heads"] == [F1B]
    assert "branchmig switch feature1" in failure["next"]

    # The advice, followed: back on feature1 nothing runs, and the failure is over.
    p.ok("switch", "feature1")
    code, data = _status_json(p)
    assert code == 0 and data["failure"] is None and data["in_step"]


def test_after_an_upgrade_fails_status_says_fix_it_then_sync(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    p.git("checkout", "-q", "feature2")
    p.write(f"{F2}_posts.py", RAISING_F2)
    p.commit("feature2: posts, raising")
    proc = p.branchmig("sync")
    assert proc.returncode == 1
    assert sqlite_version(p.db_path) == {F1}  # put back as it was

    proc = p.branchmig("status")
    assert proc.returncode == 1
    path = f"alembic/versions/{F2}_posts.py"
    assert proc.stdout.splitlines()[-1] == (
        f"next:       fix the upgrade of '{F2}' in {path}, then run: branchmig sync"
    ), proc.stdout
    assert f"pending:    {F2}\n" in proc.stdout  # no bare "run: branchmig sync"
    assert f"unknown:    {F1} (on feature1)\n" in proc.stdout
    assert "the database was put back as it was" in proc.stdout

    (p.versions / f"{F2}_posts.py").write_text(RAISING_F2.replace("    raise Runtime", "    # "))
    code, data = _status_json(p)
    assert code == 1 and data["failure"]["sync_repeats_it"] is False
    assert data["failure"]["next"] == f"the script of '{F2}' has changed since; run: branchmig sync"
    p.ok("sync")
    code, data = _status_json(p)
    assert code == 0 and data["failure"] is None


def test_a_failure_the_database_has_moved_on_from_is_not_reported(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    _feature1_gains_an_indexed_phone(p)
    p.ok("sync")
    assert p.branchmig("switch", "main").returncode == 1
    assert p.branchmig("status").returncode == 1
    # Fixed by hand, as the advice says: the record no longer fits the database.
    (p.versions / f"{F1B}_phone.py").write_text(
        (p.versions / f"{F1B}_phone.py")
        .read_text()
        .replace(UNBATCHED_DROP, '    op.drop_index("ix_users_phone", "users")\n' + UNBATCHED_DROP)
    )
    down = p.run(str(BIN / "alembic"), "downgrade", f"{F1B}-1")
    assert down.returncode == 0, down.stderr
    code, data = _status_json(p)
    assert code == 0 and data["failure"] is None


def test_a_failed_downgrade_without_snapshot_says_to_run_the_fixed_one_by_hand(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    _feature1_gains_an_indexed_phone(p)
    p.ok("sync")
    p.git("checkout", "-q", "main")  # no hooks: the database stays at F1B
    proc = p.branchmig("sync", "--no-snapshot")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    # A fixed file would not be what runs: sync reverts F1B with the script that applied it.
    assert "fix the script, then run: branchmig sync" not in last, last
    assert (
        f"branchmig reverts '{F1B}' with the script that applied it, so fix its downgrade "
        f"and run it by hand (alembic downgrade {F1B}-1), then run: branchmig sync"
    ) in last, last
    code, data = _status_json(p)
    assert code == 1 and data["failure"]["restored"] is False
    assert data["failure"]["next"].startswith(
        "go back to a branch whose scripts fit the database (nothing runs): "
        "branchmig switch feature1;"
    )
