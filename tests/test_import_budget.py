"""What the fast paths may load: the hook's Python when it has nothing heavy to do, and
``branchmig heads``, cold and remembered. Each runs in a fresh interpreter on a real
project; the test lists the modules it ended with. SQLAlchemy, Alembic, click and the
drivers are imported lazily for these paths' sake: a module-level import of one of them
anywhere on the way shows up here, not as a slower checkout weeks later."""

from __future__ import annotations

import json
import sys

import pytest
from e2e_projects import Project

# Third-party top-level packages none of these paths may load.
HEAVY = {"sqlalchemy", "alembic", "click", "flask", "psycopg", "pymysql", "mako", "greenlet"}

# Runs one path in this interpreter, then prints the modules it loaded as JSON on the
# last line of stdout. The branchmig entry points end the process with os._exit (no
# atexit), so exit_now is replaced by one that raises.
_PROBE = """
import json, sys
import branchmig.process as process
def _exit(code):
    raise SystemExit(code)
process.exit_now = _exit
def _report():
    sys.stdout.flush()
    print("\\n" + json.dumps(sorted(sys.modules)))
try:
    {call}
except SystemExit:
    pass
_report()
"""


def _loaded(p: Project, call: str) -> tuple[set[str], set[str], str]:
    """branchmig's modules and the third-party top-level packages ``call`` loaded, and
    what it said on stderr."""
    proc = p.run(sys.executable, "-c", _PROBE.format(call=call))
    assert proc.returncode == 0, proc.stderr
    names = json.loads(proc.stdout.strip().splitlines()[-1])
    ours = {n for n in names if n == "branchmig" or n.startswith("branchmig.")}
    stdlib = set(sys.stdlib_module_names)
    tops = {n.partition(".")[0] for n in names} - stdlib - {"branchmig"}
    return ours, {t for t in tops if not t.startswith("_")}, proc.stderr


def _hook(p: Project, hook: str, *args: str) -> str:
    return f"from branchmig import hookrun; hookrun.run({hook!r}, {list(args)!r})"


# The move's machinery, loaded by the hook before it knows whether it moves anything.
HOOK_MODULES = {
    "branchmig",
    "branchmig.cache",
    "branchmig.commitcode",
    "branchmig.databases",
    "branchmig.downgrades",
    "branchmig.errors",
    "branchmig.gitrepo",
    "branchmig.gitrepo.base",
    "branchmig.gitrepo.files",
    "branchmig.gitrepo.history",
    "branchmig.gitrepo.objects",
    "branchmig.gitrepo.refs",
    "branchmig.gitrepo.worktree",
    "branchmig.graph",
    "branchmig.headers",
    "branchmig.hookrun",
    "branchmig.hooks",
    "branchmig.layout",
    "branchmig.lifecycle",
    "branchmig.move",
    "branchmig.move.applied",
    "branchmig.move.commands",
    "branchmig.move.execute",
    "branchmig.move.gather",
    "branchmig.move.rehearse",
    "branchmig.move.request",
    "branchmig.move.result",
    "branchmig.move.rollback",
    "branchmig.move.steps",
    "branchmig.plan",
    "branchmig.process",
    "branchmig.project",
    "branchmig.provenance",
    "branchmig.remembered",
    "branchmig.reports",
    "branchmig.reports.analysis",
    "branchmig.reports.move",
    "branchmig.scripts",
    "branchmig.session",
    "branchmig.snapshots",
    "branchmig.snapshots.base",
    "branchmig.state",
    "branchmig.urls",
    "branchmig.workspace",
}


def test_a_hook_event_it_skips_loads_no_heavy_package(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    ours, third, _ = _loaded(p, _hook(p, "post-rewrite", "amend"))
    assert not third & HEAVY, third
    assert ours <= HOOK_MODULES, ours - HOOK_MODULES


def test_a_return_that_only_restores_loads_neither_sqlalchemy_nor_alembic(
    db_at_feature1_head_with_emails: Project,
) -> None:
    """The remembered path: both branches have a snapshot waiting, env.py gave a plain
    SQLite file, so coming back restores it with sqlite3 alone."""
    p = db_at_feature1_head_with_emails
    p.ok("install")
    p.checkout("feature2")
    p.checkout("feature1")
    previous = p.git("rev-parse", "HEAD").strip()
    p.git("-c", "core.hooksPath=/dev/null", "checkout", "-q", "feature2")
    new = p.git("rev-parse", "HEAD").strip()
    ours, third, said = _loaded(p, _hook(p, "post-checkout", previous, new, "1"))
    assert "restored the snapshot of 'feature2'" in said, said
    assert not third & HEAVY, third
    allowed = HOOK_MODULES | {"branchmig.snapshots.sqlite", "branchmig.snapshots.folder"}
    assert ours <= allowed, ours - allowed
    status = p.status()
    assert status["in_step"], status


# What `branchmig heads` may load on its way to the answer.
HEADS_MODULES = {
    "branchmig",
    "branchmig.analysis",
    "branchmig.cache",
    "branchmig.downgrades",
    "branchmig.entry",
    "branchmig.errors",
    "branchmig.gitrepo",
    "branchmig.gitrepo.base",
    "branchmig.gitrepo.files",
    "branchmig.gitrepo.history",
    "branchmig.gitrepo.objects",
    "branchmig.gitrepo.refs",
    "branchmig.gitrepo.worktree",
    "branchmig.graph",
    "branchmig.headers",
    "branchmig.layout",
    "branchmig.plan",
    "branchmig.process",
    "branchmig.project",
    "branchmig.scripts",
    "branchmig.workspace",
}
# The cold path goes through the CLI: click, and the modules every command shares.
CLI_MODULES = {
    "branchmig.cli",
    "branchmig.conventions",
    "branchmig.graphview",
    "branchmig.reports",
    "branchmig.reports.analysis",
    "branchmig.reports.hooks",
    "branchmig.reports.move",
    "branchmig.reports.snapshots",
    "branchmig.reports.status",
    "branchmig.reports.verify",
    "branchmig.snapshots",
    "branchmig.snapshots.base",
    "branchmig.state",
    "branchmig.urls",
}
_HEADS = "import sys; sys.argv = ['branchmig', 'heads']; from branchmig import entry; entry.main()"


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "remembered"])
def test_heads_loads_no_database_machinery(
    alembic_repo_with_two_feature_branches: Project, warm: bool
) -> None:
    p = alembic_repo_with_two_feature_branches
    if warm:
        p.ok("heads")  # remembers the answer
    ours, third, _ = _loaded(p, _HEADS)
    allowed = HEADS_MODULES if warm else HEADS_MODULES | CLI_MODULES
    assert ours <= allowed, ours - allowed
    assert not third & (HEAVY - ({"click"} if not warm else set())), third
    if warm:
        assert "branchmig.cli" not in ours


def test_the_probe_sees_a_heavy_import(alembic_repo_with_two_feature_branches: Project) -> None:
    """The budget tests above would pass on a probe that saw nothing."""
    ours, third, _ = _loaded(
        alembic_repo_with_two_feature_branches, "import branchmig.runner, sqlalchemy"
    )
    assert "sqlalchemy" in third and "branchmig.runner" in ours
