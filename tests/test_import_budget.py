"""What the fast paths may load: the hook's Python when it has nothing heavy to do, and
``branchmig heads``, cold and remembered. Each runs in a fresh interpreter on a real
project; the test lists the modules it ended with. SQLAlchemy, Alembic, click and the
drivers are imported lazily for these paths' sake: a module-level import of one of them
anywhere on the way shows up here, not as a slower checkout weeks later.

branchmig's own modules are imported at module level, but at a few doors (``DOORS``):
functions that load a costly part only when it is needed, each saying why."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
from e2e_projects import Project

from branchmig import cli, dbcli

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


# What the hook loads before it knows whether it moves anything: the project found, the
# hook's config, the heads, the reports it prints. The move is behind hookrun._sync.
HOOK_MODULES = {
    "branchmig",
    "branchmig.cache",
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
    "branchmig.heads",
    "branchmig.hookrun",
    "branchmig.hooks",
    "branchmig.layout",
    "branchmig.process",
    "branchmig.project",
    "branchmig.reports",
    "branchmig.reports.analysis",
    "branchmig.reports.move",
    "branchmig.scripts",
    "branchmig.snapshots",
    "branchmig.snapshots.base",
    "branchmig.snapshots.together",
    "branchmig.urls",
    "branchmig.workspace",
}
# What a move adds: its machinery, its session and state, the edges to Alembic and the
# database (light: SQLAlchemy and Alembic load inside their functions), the SQLite backend.
MOVE_MODULES = HOOK_MODULES | {
    "branchmig.alembicenv",
    "branchmig.commitcode",
    "branchmig.databases",
    "branchmig.dbread",
    "branchmig.destructive",
    "branchmig.flaskapp",
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
    "branchmig.mysqltls",
    "branchmig.plan",
    "branchmig.provenance",
    "branchmig.remembered",
    "branchmig.runner",
    "branchmig.session",
    "branchmig.snapshots.folder",
    "branchmig.snapshots.pgsurvey",
    "branchmig.snapshots.sqlite",
    "branchmig.state",
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
    assert ours <= MOVE_MODULES, ours - MOVE_MODULES
    status = p.status()
    assert status["in_step"], status


# What `branchmig heads` may load on its way to the answer.
HEADS_MODULES = {
    "branchmig",
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
    "branchmig.heads",
    "branchmig.layout",
    "branchmig.process",
    "branchmig.project",
    "branchmig.scripts",
    "branchmig.workspace",
}
# The cold path goes through the CLI: click, and the modules of the commands that do not
# open the database (the analyzer, install); those of `dbcli` load when one of them runs.
CLI_MODULES = {
    "branchmig.analysis",
    "branchmig.cli",
    "branchmig.conventions",
    "branchmig.destructive",
    "branchmig.hooks",
    "branchmig.plan",
    "branchmig.reports",
    "branchmig.reports.analysis",
    "branchmig.reports.hooks",
    "branchmig.snapshots",
    "branchmig.snapshots.base",
    "branchmig.snapshots.together",
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


# The functions that import branchmig's own modules, as module:function; each says why
# in a comment starting "A door:". Everywhere else they are imported at module level.
DOORS = {
    "branchmig.entry:main",  # click and the CLI, when no remembered answer will do
    "branchmig.cli:_database_command",  # the move's machinery, for the commands that move
    "branchmig.hookrun:_sync",  # the move's machinery, when the hook moves
    "branchmig.hookrun:_close_merge",  # merge revisions, when a merge left several heads
    "branchmig.snapshots:_sqlite_backend",  # one backend per database met
    "branchmig.snapshots:_server_backend",  # (and a server's driver)
    "branchmig.session:_server_memo",  # the PostgreSQL survey, for a PostgreSQL database
    "branchmig.session:surveyed",  # (the same)
    "branchmig.move.steps:run_plan",  # Alembic's runner, for a plan with steps
    "branchmig.move.steps:_phases",  # (and the project's code at a commit)
}
PACKAGE = Path(__file__).resolve().parent.parent / "branchmig"


def _imported(node: ast.AST) -> list[str]:
    """The modules ``node`` imports, ``?`` for an ``import_module`` of a computed name."""
    if isinstance(node, ast.ImportFrom):
        return [("." * node.level) + (node.module or "")]
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    dynamic = ("importlib.import_module", "import_module", "__import__")
    if isinstance(node, ast.Call) and ast.unparse(node.func) in dynamic and node.args:
        arg = node.args[0]
        return [arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else "?"]
    return []


def _imports_in_functions() -> dict[str, list[str]]:
    """module:function -> the own modules it imports (``?``: it cannot be told before)."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                own = [
                    name
                    for node in ast.walk(fn)
                    for name in _imported(node)
                    if name == "?" or name.startswith((".", "branchmig"))
                ]
                if own:
                    found.setdefault(f"{module}:{fn.name}", []).extend(own)
    return found


def test_own_modules_are_imported_at_module_level_but_at_the_doors() -> None:
    found = _imports_in_functions()
    outside = {where: names for where, names in found.items() if where not in DOORS}
    assert not outside, f"import these at module level, or make a door of the function: {outside}"
    assert set(found) == DOORS, f"doors that import nothing any more: {DOORS - set(found)}"
    assert sum(len(names) for names in found.values()) <= 15, found


def test_each_door_says_why_it_is_lazy() -> None:
    for door in sorted(DOORS):
        module, _, function = door.partition(":")
        path = PACKAGE.parent.joinpath(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        (fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
        text = ast.get_source_segment(path.read_text(encoding="utf-8"), fn) or ""
        assert "# A door:" in text, door


def test_the_door_check_sees_an_import_in_a_function() -> None:
    """The check above would pass on a walk that saw nothing."""
    found = _imports_in_functions()
    assert "branchmig.move.commands" in found["branchmig.hookrun:_sync"]


def test_the_cli_lists_every_command_of_dbcli_and_no_other() -> None:
    """``cli.main`` names the lazy commands without loading them: the list and the module
    must not drift apart (a command missing from it would be unreachable)."""
    assert sorted(cli.DATABASE_COMMANDS) == sorted(dbcli.COMMANDS)
