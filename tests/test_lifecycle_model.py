"""The product's core promise as a model: whatever mix of checkouts (through the hook or
``branchmig switch``), resets, merges, rebases, deleted branches, worktrees, plain Alembic
runs and killed switches a developer goes through, (A) the database always ends at the
working tree's heads, and (B) a branch checked out again finds the rows it had when it was
left, unless its scripts changed meanwhile, which branchmig then says ("scripts changed").

A hypothesis ``RuleBasedStateMachine`` drives real git, a real ``alembic init`` project on
the SQLite file app.db and the real ``branchmig`` CLI, with hooks installed. Every new
migration creates a table of its own, ``t_<rev>`` (its downgrade drops it), so leaving a
branch whose migrations the next branch lacks loses data unless a snapshot keeps it.
Other branches also get upgrades that destroy: one drops a table's column (its downgrade
re-adds it empty), one rewrites its values (``UPDATE``), as real projects write them. Some
migrations do their work through a helper module that comes in on their branch, as real
ones import their own helpers: a checkout that removes it must still revert them.

The model learns the revision graph of any ref from the scripts git holds (never from
branchmig), and records, when a branch is left for a branch with other migrations, the
rows of every table it can read: the tables the move drops, those an upgrade drops a
column of or rewrites, and those it carries forward into the next branch's database.

Git's edges are steps too: branches deleted and made again under nested names (``x``
then ``x/n``), branches made on the same commit (``checkout -b``, ``git branch``),
``commit --amend`` of an applied script (applied by branchmig, or by plain Alembic alone:
the move away must revert it with the reflog's text), and revision cycles written and
removed (refused, nothing changed), and a trip to another branch and back with no hook
run, then ``sync`` (no row moved: nothing changes, no other branch's snapshot goes).

CI: ``BRANCHMIG_MODEL_EXAMPLES`` (default 5) examples of ``BRANCHMIG_MODEL_STEPS`` (10)
steps, in the object format ``BRANCHMIG_TEST_OBJECT_FORMAT`` names (sha1, sha256); raise
both for a soak (25 x 20).
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e_projects import (
    BIN,
    BRANCHMIG,
    F2,
    Project,
    make_seed_project,
    script,
    sqlite_dump,
    sqlite_version,
)
from gitutil import git_env
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from branchmig.snapshots import backend_for_url

ALEMBIC = str(BIN / "alembic")
VERSIONS = "alembic/versions"
# Short lowercase names, and one pair differing only in case: git keeps them apart, and
# so must their data.
NEW_BRANCHES = ("a", "b", "feat", "Feat")
SCRIPTS_CHANGED = "scripts changed"
# The note naming a snapshot kept rather than restored, and how to restore it by hand.
KEPT_BY_HAND = re.compile(r"restore it by hand with: branchmig snapshot restore (\S+)")

EXAMPLES = int(os.environ.get("BRANCHMIG_MODEL_EXAMPLES", "5"))
STEPS = int(os.environ.get("BRANCHMIG_MODEL_STEPS", "10"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,  # no .hypothesis folder in the repository
)


# -- what git holds: the revision graph of a ref, read from the scripts themselves ---------


@dataclass(frozen=True)
class Rev:
    id: str
    parents: tuple[str, ...]
    blob: str  # git's id of the script's text: a changed script has another


Graph = dict[str, Rev]


def _identifiers(text: str) -> tuple[str, tuple[str, ...]] | None:
    """``revision`` and ``down_revision`` of a migration script, by reading it (no
    import): None for a file that is no migration."""
    found: dict[str, object] = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                found[target.id] = ast.literal_eval(value)
    revision, down = found.get("revision"), found.get("down_revision")
    if not isinstance(revision, str):
        return None
    parents = () if down is None else (down,) if isinstance(down, str) else tuple(down)
    return revision, tuple(str(d) for d in parents)


def git_out(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=git_env(), capture_output=True, text=True, check=True
    ).stdout


def graph_at(cwd: Path, ref: str) -> Graph:
    graph: Graph = {}
    for line in git_out(cwd, "ls-tree", "-r", ref, "--", VERSIONS).splitlines():
        meta, path = line.split("\t", 1)
        blob = meta.split()[2]
        if not path.endswith(".py"):
            continue
        found = _identifiers(git_out(cwd, "cat-file", "blob", blob))
        if found is not None:
            graph[found[0]] = Rev(found[0], found[1], blob)
    return graph


def heads_of(graph: Graph) -> set[str]:
    parents = {p for rev in graph.values() for p in rev.parents}
    return set(graph) - parents


# -- what the database holds ---------------------------------------------------------------


def table_rows(db: Path, table: str, column: str) -> list[tuple[int, str]] | None:
    """The rows of ``table`` by id; None when there is no such table."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        return [
            (int(r[0]), str(r[1]))
            for r in conn.execute(f"SELECT id, {column} FROM {table} ORDER BY id")
        ]
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()


def insert_rows(db: Path, table: str, column: str, values: list[str]) -> None:
    conn = sqlite3.connect(db, timeout=30)
    try:
        with conn:
            conn.executemany(f"INSERT INTO {table} ({column}) VALUES (?)", [(v,) for v in values])
    finally:
        conn.close()


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass(frozen=True)
class Left:
    """A table a branch lost when it was left, with what it held then."""

    rev: str
    blob: str
    rows: list[tuple[int, str]]


# -- the model -------------------------------------------------------------------------------


class LifecycleModel(RuleBasedStateMachine):
    """One fresh project per example; ``template`` and ``workdir`` are set by the test."""

    template: Path
    workdir: Path

    new_names = Bundle("new_names")

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="model-", dir=self.workdir))
        self.p: Project | None = None
        # The tables each revision creates, and the column the model writes into.
        self.tables: dict[str, tuple[str, str]] = {F2: ("posts", "title")}
        # Upgrades that destroy: revision -> (the revision whose table it alters, "drop"
        # its column or "update" its values).
        self.alters: dict[str, tuple[str, str]] = {}
        self.left: dict[str, dict[str, Left]] = {}  # branch -> table -> what it held
        # branch -> the scripts it had when it was left (revision -> blob)
        self.left_scripts: dict[str, dict[str, str]] = {}
        self.leaving_scripts: dict[str, str] = {}
        self.serial = 0
        self.switch_seconds: list[float] = [1.0]
        self.hook_seconds: list[float] = [0.8]
        self.worktrees = 0

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------

    @property
    def project(self) -> Project:
        assert self.p is not None
        return self.p

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def scratch_worktree(self, name: str, branch: str) -> tuple[Path, tuple[str, str]]:
        """A worktree of ``branch`` to commit on, made with the hooks off (as another
        clone would push to it); the git options that keep them off for its commit."""
        scratch = self.folder / name
        no_hooks = ("-c", f"core.hooksPath={self.folder / 'no-hooks'}")
        self.must(
            "git",
            *no_hooks,
            "worktree",
            "add",
            "-q",
            str(scratch),
            branch,
            what=f"git worktree add (hooks off) {scratch.name} {branch}",
        )
        return scratch, no_hooks

    def branches(self) -> list[str]:
        out = git_out(self.project.root, "for-each-ref", "--format=%(refname:short)", "refs/heads")
        return sorted(out.split())

    def current(self) -> str | None:
        name = self.project.branch()
        return None if name == "HEAD" else name

    def others(self) -> list[str]:
        return [b for b in self.branches() if b != self.current()]

    def has_others(self) -> bool:
        return self.p is not None and self.current() is not None and bool(self.others())

    def tree(self, ref: str = "HEAD") -> Graph:
        return graph_at(self.project.root, ref)

    def rows(self, table: str, column: str) -> list[tuple[int, str]] | None:
        return table_rows(self.project.db_path, table, column)

    @staticmethod
    def file_of(rev: str, table: str) -> str:
        return f"{rev}_{table}.py"

    def say(self, what: str, proc: subprocess.CompletedProcess[str]) -> str:
        output = (proc.stdout + proc.stderr).strip()
        note(f"$ {what}  -> exit {proc.returncode}" + (f"\n    {output}" if output else ""))
        return output

    def must(self, *args: str, what: str | None = None) -> str:
        """A command (git, alembic, branchmig) that must succeed; its output."""
        proc = self.project.run(*args)
        shown = what or " ".join(Path(args[0]).name if i == 0 else a for i, a in enumerate(args))
        output = self.say(shown, proc)
        assert proc.returncode == 0, f"{shown} failed:\n{output}"
        assert "Traceback" not in output, f"{shown}:\n{output}"
        return output

    def bm(self, *args: str) -> str:
        return self.must(BRANCHMIG, *args, what="branchmig " + " ".join(args))

    def sync(self) -> str:
        """The ``branchmig sync`` after a rule that ran no hook."""
        return self.bm("sync")

    def readable(self, rev: str, tree: Graph) -> bool:
        """Whether ``tree`` has the table of ``rev`` with its column (no upgrade in it
        dropped the column)."""
        return (
            rev in tree
            and rev in self.tables
            and not any(a in tree and self.alters[a] == (rev, "drop") for a in self.alters)
        )

    def record_leaving(self, target_ref: str) -> dict[str, Left]:
        """The rows that must come back when the branch is entered again, read before
        moving from the working tree to ``target_ref``: when the target has other
        migrations, every table the branch can read (the move may drop it, an upgrade
        may drop its column or rewrite it, or it travels into the target's database);
        none when the move changes nothing (the two branches share the database)."""
        here, there = self.tree(), self.tree(target_ref)
        self.leaving_scripts = {rev.id: rev.blob for rev in here.values()}
        if {r.id: r.blob for r in here.values()} == {r.id: r.blob for r in there.values()}:
            return {}
        kept: dict[str, Left] = {}
        for rev in here.values():
            if not self.readable(rev.id, here):
                continue
            table, column = self.tables[rev.id]
            rows = self.rows(table, column)
            assert rows is not None, f"{table} of {rev.id} is missing before the move"
            kept[table] = Left(rev.id, rev.blob, rows)
        return kept

    def left_branch(self, branch: str | None, dropped: dict[str, Left]) -> None:
        if branch is not None:
            self.left[branch] = dropped
            self.left_scripts[branch] = self.leaving_scripts
            if dropped:
                note(
                    f"    model: '{branch}' left with "
                    + ", ".join(f"{t}={len(lf.rows)} rows" for t, lf in sorted(dropped.items()))
                )

    def check_entered(self, branch: str | None, output: str) -> None:
        """Invariant B: ``branch`` just came back; the tables it lost when it was left
        hold what they held then, unless its scripts changed meanwhile."""
        if branch is None:
            return
        recorded = self.left.pop(branch, {})
        scripts_then = self.left_scripts.pop(branch, {})
        if not recorded:
            return
        tree = self.tree()
        changed = sorted(
            r for r, blob in scripts_then.items() if r in tree and tree[r].blob != blob
        )
        # Upgrades that arrived on the branch while it was away alter what comes back.
        arrived = {self.alters[r][0] for r in tree if r in self.alters and r not in scripts_then}
        kept = KEPT_BY_HAND.search(output)
        if (changed or kept) and not self.rows_are_back(recorded, tree, arrived):
            # Its snapshot holds scripts the branch no longer has (changed since, or
            # migrated with another text of a script, as branchmig may know better than
            # the model): it is kept, not restored, and the rows of every table are in
            # it, to be restored by hand. (A snapshot restored all the same keeps the
            # promise: the rows are back.)
            assert SCRIPTS_CHANGED in output and kept, (
                f"'{branch}' came back with {', '.join(changed)}'s script changed, so its "
                f"snapshot could not be restored, but branchmig did not say "
                f"'{SCRIPTS_CHANGED}' and name it.\nIts output:\n{output}"
            )
            self.check_kept(kept.group(1), recorded)
            return
        for table, lf in sorted(recorded.items()):
            if lf.rev not in tree or lf.rev in arrived:
                continue  # the branch no longer has this revision: nothing to bring back
            column = self.tables[lf.rev][1]
            assert self.rows(table, column) == lf.rows, (
                f"'{branch}' came back but {table} (of {lf.rev}) lost its rows: expected "
                f"{lf.rows}, found {self.rows(table, column)}.\nbranchmig said:\n{output}"
            )

    def check_kept(self, key: str, recorded: dict[str, Left]) -> None:
        """The snapshot ``key``, kept for a restore by hand, holds every table's rows as
        the branch left them."""
        p = self.project
        with contextlib.chdir(p.root):  # the URL's path is the project's
            stored = backend_for_url(p.url, store_dir=p.state_dir / "snapshots").stored()
        where = {s.key: Path(s.location) for s in stored}
        assert key in where, f"the snapshot '{key}' kept for a restore by hand is gone"
        for table, lf in sorted(recorded.items()):
            found = table_rows(where[key], table, self.tables[lf.rev][1])
            assert found == lf.rows, (
                f"the snapshot '{key}' kept for a restore by hand lost {table}'s rows: "
                f"expected {lf.rows}, found {found}"
            )

    def rows_are_back(self, recorded: dict[str, Left], tree: Graph, arrived: set[str]) -> bool:
        """Whether every table the branch left holds its rows again, but for those an
        upgrade that arrived meanwhile altered."""
        return all(
            self.rows(table, self.tables[lf.rev][1]) == lf.rows
            for table, lf in recorded.items()
            if lf.rev in tree and lf.rev not in arrived
        )

    def pick(self, data: st.DataObject, choices: list[str], label: str) -> str:
        return data.draw(st.sampled_from(sorted(choices)), label=label)

    # -- setup ----------------------------------------------------------------------------

    @initialize(target=new_names, mode=st.sampled_from(["auto", "always"]))
    def seed_project_with_hooks(self, mode: str) -> object:
        """The seed repository (main: users; feature1: users.email; feature2: posts),
        the snapshot mode in pyproject.toml, hooks installed, the database at main."""
        self.p = make_seed_project(
            self.template,
            self.folder / "project",
            kind="alembic",
            extra_pyproject=f'snapshots = "{mode}"\n',
        )
        note(f"seed project, snapshots = {mode!r}")
        self.bm("install")
        self.sync()
        return multiple(*NEW_BRANCHES)

    # -- rules: branches and migrations -------------------------------------------------

    @precondition(lambda self: self.p is not None and self.current() is not None)
    @rule(name=consumes(new_names))
    def create_branch_here(self, name: str) -> None:
        """``git checkout -b NAME``: same commit, so the hook leaves the database alone."""
        self.must("git", "checkout", "-q", "-b", name)

    @precondition(
        lambda self: (
            self.p is not None and self.current() is not None and len(heads_of(self.tree())) == 1
        )
    )
    @rule(
        apply_with=st.sampled_from(["branchmig sync", "alembic upgrade heads"]),
        count=st.integers(1, 3),
        helper=st.booleans(),
    )
    def commit_migration_and_write_rows(
        self, apply_with: str, count: int, helper: bool = False
    ) -> None:
        """A new migration (its own table) committed on the current branch, applied by
        ``branchmig sync`` or plain Alembic (then a sync), and rows written into it. With
        ``helper``, the migration creates and drops its table through a module of the
        project that comes in with it (``mig_<rev>.py`` at the top, on alembic.ini's
        ``prepend_sys_path``), as real migrations import their own helpers: a checkout
        that removes it must still revert the migration."""
        rev, table = self.commit_new_migration(helper)
        if apply_with == "alembic upgrade heads":
            self.must(ALEMBIC, "upgrade", "heads")
        self.sync()
        self.write_into(table, "v", count)

    def commit_new_migration(self, helper: bool = False) -> tuple[str, str]:
        """A new migration creating its own table, committed on the current branch (one
        head): its revision and table."""
        p = self.project
        (head,) = heads_of(self.tree())
        rev = f"r{self.next_serial():02d}{random.Random(self.serial).randrange(16**6):06x}"
        table = f"t_{rev}"
        if helper:
            (p.root / f"mig_{rev}.py").write_text(
                "import sqlalchemy as sa\nfrom alembic import op\n\n\n"
                "def create(table):\n"
                '    op.create_table(table, sa.Column("id", sa.Integer, primary_key=True),\n'
                '                    sa.Column("v", sa.Text))\n\n\n'
                "def drop(table):\n    op.drop_table(table)\n"
            )
            text = script(
                rev,
                head,
                f'    mig_{rev}.create("{table}")',
                f'    mig_{rev}.drop("{table}")',
                top=f"\nimport mig_{rev}\n",
            )
        else:
            text = script(
                rev,
                head,
                f'    op.create_table("{table}", sa.Column("id", sa.Integer, primary_key=True),\n'
                f'                    sa.Column("v", sa.Text))',
                f'    op.drop_table("{table}")',
            )
        p.write(self.file_of(rev, table), text)
        p.commit(f"{self.current()}: {table}")
        self.tables[rev] = (table, "v")
        note(
            f"$ git commit  # {rev} creates {table} on '{self.current()}', after {head}"
            + (f", through mig_{rev}.py" if helper else "")
        )
        return rev, table

    def write_into(self, table: str, column: str, count: int) -> None:
        values = [f"{self.current()}#{self.next_serial()}" for _ in range(count)]
        insert_rows(self.project.db_path, table, column, values)
        insert_rows(self.project.db_path, "users", "name", values)
        note(f"    wrote {values} into {table} (and users)")

    @precondition(
        lambda self: (
            self.p is not None
            and self.current() is not None
            and any(self.readable(r, self.tree()) for r in self.tree())
        )
    )
    @rule(data=st.data(), count=st.integers(1, 2))
    def write_rows(self, data: st.DataObject, count: int) -> None:
        """Rows into one of the tables the current branch's migrations created."""
        tree = self.tree()
        mine = [r for r in tree if self.readable(r, tree)]
        rev = self.pick(data, mine, "revision")
        self.write_into(*self.tables[rev], count)

    # -- rules: moving between branches ----------------------------------------------------

    @precondition(has_others)
    @rule(data=st.data())
    def checkout_through_the_hook(self, data: st.DataObject) -> None:
        self.move(self.pick(data, self.others(), "branch"), "git checkout")

    @precondition(has_others)
    @rule(data=st.data())
    def branchmig_switch(self, data: st.DataObject) -> None:
        self.move(self.pick(data, self.others(), "branch"), "branchmig switch")

    @precondition(has_others)
    @rule(data=st.data())
    def checkout_without_hooks_then_sync(self, data: st.DataObject) -> None:
        """Hooks uninstalled, ``git checkout``, hooks back, then ``branchmig sync``: the
        sync does what the hook would have done."""
        target = self.pick(data, self.others(), "branch")
        leaving, dropped = self.current(), self.record_leaving(target)
        self.bm("uninstall")
        self.must("git", "checkout", "-q", target)
        self.bm("install")
        output = self.sync()
        self.left_branch(leaving, dropped)
        self.check_entered(target, output)

    @precondition(has_others)
    @rule(data=st.data())
    def trip_without_hooks_then_sync(self, data: st.DataObject) -> None:
        """``git checkout OTHER`` and back with no hook run (``-c core.hooksPath``), then
        ``branchmig sync``: no row moved, so the sync changes none, and every snapshot
        another branch would restore is still there (a sync that took the live rows for
        OTHER's used to replace OTHER's own snapshot with them)."""
        here, other = self.current(), self.pick(data, self.others(), "via")
        no_hooks = ("-c", f"core.hooksPath={self.folder / 'no-hooks'}")
        tree = self.tree()
        live = {rev: self.rows(*self.tables[rev]) for rev in tree if self.readable(rev, tree)}
        before = self.snapshot_keys(other_than=here)
        self.must("git", *no_hooks, "checkout", "-q", other, what=f"git checkout {other} (no hook)")
        self.must("git", *no_hooks, "checkout", "-q", here, what=f"git checkout {here} (no hook)")
        output = self.sync()
        gone = before - self.snapshot_keys(other_than=here)
        assert not gone, f"a sync after a trip with no hook dropped {sorted(gone)}:\n{output}"
        for rev, rows in sorted(live.items()):
            assert self.rows(*self.tables[rev]) == rows, (
                f"a sync after a trip with no hook changed {self.tables[rev][0]}'s rows: "
                f"expected {rows}, found {self.rows(*self.tables[rev])}.\n{output}"
            )

    def snapshot_keys(self, *, other_than: str | None) -> set[str]:
        proc = self.project.run(BRANCHMIG, "snapshot", "list", "--json")
        assert proc.returncode == 0, proc.stderr
        listed = json.loads(proc.stdout)["snapshots"]
        return {s["key"] for s in listed if s["branch"] != other_than}

    @precondition(has_others)
    @rule(data=st.data())
    def reset_hard_then_sync(self, data: st.DataObject) -> None:
        """``git reset --hard OTHER`` (no hook runs) then ``branchmig sync``. The branch
        stays checked out: it now holds OTHER's migrations, and keeps no promise for the
        ones it dropped."""
        target = self.pick(data, self.others(), "onto")
        self.must("git", "reset", "-q", "--hard", target)
        self.sync()

    # -- rules: merges, rebases, deleted branches --------------------------------------

    def close_two_heads(self, rebase: bool) -> None:
        """``branchmig merge-heads`` (``--rebase``) when the tree has several heads, the
        file committed, then a sync (a commit runs no hook)."""
        if len(heads_of(self.tree())) <= 1:
            return
        proc = self.project.run(BRANCHMIG, "merge-heads", *(["--rebase"] if rebase else []))
        output = self.say(f"branchmig merge-heads{' --rebase' if rebase else ''}", proc)
        if proc.returncode != 0 and rebase and "or run: branchmig merge-heads" in output:
            self.bm("merge-heads")  # what the refusal says to run (several first migrations)
        else:
            assert proc.returncode == 0 and "Traceback" not in output, output
        self.must("git", "add", "-A")
        self.must("git", "commit", "-q", "-m", "close the heads")
        self.sync()

    @precondition(has_others)
    @rule(data=st.data(), close_with_rebase=st.booleans())
    def git_merge_then_merge_heads(self, data: st.DataObject, close_with_rebase: bool) -> None:
        other = self.pick(data, self.others(), "merged")
        proc = self.project.run("git", "merge", "-q", "--no-edit", other)
        output = self.say(f"git merge {other}", proc)
        if proc.returncode != 0:  # a conflict (two edits of one script): give it up
            self.must("git", "merge", "--abort")  # no hook runs: the database stays
            return
        assert "Traceback" not in output, output
        self.close_two_heads(close_with_rebase)

    @precondition(has_others)
    @rule(data=st.data(), close_with_rebase=st.booleans())
    def git_rebase_then_merge_heads(self, data: st.DataObject, close_with_rebase: bool) -> None:
        onto = self.pick(data, self.others(), "onto")
        proc = self.project.run("git", "rebase", onto)
        output = self.say(f"git rebase {onto}", proc)
        if proc.returncode != 0:  # a conflict (two edits of one script): give it up
            self.must("git", "rebase", "--abort")
            self.sync()
            return
        assert "Traceback" not in output, output
        self.close_two_heads(close_with_rebase)

    @precondition(
        lambda self: self.p is not None and self.current() is not None and len(self.others()) >= 2
    )
    @rule(data=st.data())
    def delete_other_branch(self, data: st.DataObject) -> None:
        gone = self.pick(data, self.others(), "deleted")
        self.must("git", "branch", "-q", "-D", gone)
        self.left.pop(gone, None)
        self.left_scripts.pop(gone, None)

    @precondition(has_others)
    @rule(data=st.data())
    def edit_script_of_other_branch(self, data: st.DataObject) -> None:
        """A commit on another branch that edits one of its table's scripts (a comment),
        made in a scratch worktree with hooks off: when it comes back, its snapshot is out
        of date, and branchmig must say so."""
        other = self.pick(data, self.others(), "edited")
        mine = sorted(r for r in self.tree(other) if r in self.tables)
        if not mine:
            return
        rev = self.pick(data, mine, "revision")
        scratch, no_hooks = self.scratch_worktree(f"edit-{self.next_serial()}", other)
        (path,) = [
            ln.split("\t", 1)[1]
            for ln in git_out(scratch, "ls-tree", "-r", "HEAD", "--", VERSIONS).splitlines()
            if self.tree(other)[rev].blob in ln
        ]
        with open(scratch / path, "a") as f:
            f.write(f"# edited on '{other}' ({self.serial})\n")
        git_out(scratch, *no_hooks, "commit", "-q", "-am", f"{other}: edit {rev}")
        self.must("git", "worktree", "remove", "--force", str(scratch))
        note(f"    edited {rev}'s script on '{other}'")

    @precondition(has_others)
    @rule(
        data=st.data(),
        kind=st.sampled_from(["drop", "update"]),
        then=st.sampled_from(["stay", "git checkout", "branchmig switch"]),
    )
    def commit_destructive_upgrade_on_other_branch(
        self, data: st.DataObject, kind: str, then: str
    ) -> None:
        """A commit on another branch (one head) whose upgrade drops the column of one of
        its tables (the downgrade re-adds it empty) or rewrites its values, made in a
        scratch worktree with hooks off; ``then`` the move there, by the hook or by
        switch: the rows the branch left had in that table must come back."""
        here = self.tree()
        # Only a table the branch checked out has rows in is worth destroying.
        shared = {
            other: sorted(r for r in there if self.readable(r, there) and self.readable(r, here))
            for other in self.others()
            if len(heads_of(there := self.tree(other))) == 1
        }
        choices = [other for other, tables in shared.items() if tables]
        if not choices:
            return
        other = self.pick(data, choices, "altered")
        there = self.tree(other)
        (head,) = heads_of(there)
        tables = shared[other]
        victim = self.pick(data, tables, "table of")
        table, column = self.tables[victim]
        rev = f"x{self.next_serial():02d}{random.Random(self.serial).randrange(16**6):06x}"
        if kind == "drop":
            body = script(
                rev,
                head,
                f'    with op.batch_alter_table("{table}") as batch:\n'
                f'        batch.drop_column("{column}")',
                f'    op.add_column("{table}", sa.Column("{column}", sa.Text))',
            )
        else:
            body = script(
                rev,
                head,
                f"    op.execute(\"UPDATE {table} SET {column} = {column} || ' rewritten'\")",
                "    pass",
            )
        scratch, no_hooks = self.scratch_worktree(f"alter-{self.serial}", other)
        (scratch / VERSIONS / f"{rev}_{kind}_{table}.py").write_text(body)
        git_out(scratch, "add", "-A")
        git_out(scratch, *no_hooks, "commit", "-q", "-m", f"{other}: {kind} {table}")
        self.must("git", "worktree", "remove", "--force", str(scratch))
        self.alters[rev] = (victim, kind)
        note(f"    committed {rev} on '{other}': its upgrade {kind}s {table}.{column}")
        if then != "stay":
            self.move(other, then)

    def move(self, target: str, how: str, migrated_with: dict[str, str] | None = None) -> str:
        """Check out ``target`` by ``git checkout`` (the hook) or ``branchmig switch``,
        recording what the branch left held and checking what the entered one finds.
        ``migrated_with``: revision -> the text (blob) that migrated the database, where
        it is not the tree's."""
        leaving, dropped = self.current(), self.record_leaving(target)
        self.leaving_scripts.update(migrated_with or {})
        started = time.monotonic()
        if how == "git checkout":
            output = self.must("git", "checkout", "-q", target)
            self.hook_seconds.append(time.monotonic() - started)
        else:
            output = self.bm("switch", target)
            self.switch_seconds.append(time.monotonic() - started)
        self.left_branch(leaving, dropped)
        self.check_entered(target, output)
        return output

    # -- rules: git's edges -------------------------------------------------------------

    @precondition(has_others)
    @rule(data=st.data())
    def delete_a_branch_and_recreate_it_nested(self, data: st.DataObject) -> None:
        """``git branch -D x`` then ``git branch x/n`` on the commit x had (or ``x/n``
        deleted and ``x`` made): state kept by branch name must not collide, nor give
        the new branch the deleted one's rows as its own."""
        gone = self.pick(data, self.others(), "deleted")
        made = gone.split("/")[0] if "/" in gone else f"{gone}/n"
        taken = self.branches()
        if made in taken or any(b.startswith(f"{made}/") and b != gone for b in taken):
            return
        tip = git_out(self.project.root, "rev-parse", gone).strip()
        self.must("git", "branch", "-q", "-D", gone)
        self.must("git", "branch", made, tip)
        self.left.pop(gone, None)
        self.left_scripts.pop(gone, None)

    @precondition(lambda self: self.p is not None and self.current() is not None)
    @rule(name=consumes(new_names))
    def create_branch_here_without_checkout(self, name: str) -> None:
        """``git branch NAME``: a branch on the checked-out commit, entered later."""
        self.must("git", "branch", name)

    @precondition(
        lambda self: self.has_others() and len(heads_of(self.tree())) == 1 and len(self.tree()) < 12
    )
    @rule(
        data=st.data(),
        applied_by=st.sampled_from(["branchmig", "alembic"]),
        then=st.sampled_from(["git checkout", "branchmig switch"]),
    )
    def amend_an_applied_migration(self, data: st.DataObject, applied_by: str, then: str) -> None:
        """A new migration committed and applied (by ``branchmig sync``, or by plain
        Alembic alone), rows written, then ``git commit --amend`` adding a column to its
        upgrade and dropping it first in its downgrade (hooks active: git runs none that
        moves the database for an amend). Applied by branchmig: a sync reverts it with
        the recorded text and applies the new one. By plain Alembic: nothing says which
        text migrated the database (``status`` names both); the move away reverts it
        with the one that fits (from the reflog), and coming back says the branch's
        scripts changed since its rows were kept."""
        p = self.project
        rev, table = self.commit_new_migration()
        if applied_by == "alembic":
            self.must(ALEMBIC, "upgrade", "heads")
        else:
            self.sync()
        self.write_into(table, "v", 2)
        old = self.tree()[rev].blob
        (head,) = self.tree()[rev].parents
        p.write(
            self.file_of(rev, table),
            script(
                rev,
                head,
                f'    op.create_table("{table}", sa.Column("id", sa.Integer, primary_key=True),\n'
                f'                    sa.Column("v", sa.Text))\n'
                f'    op.add_column("{table}", sa.Column("w", sa.Text))',
                f'    with op.batch_alter_table("{table}") as batch:\n'
                f'        batch.drop_column("w")\n'
                f'    op.drop_table("{table}")',
            ),
        )
        self.must("git", "commit", "-q", "-a", "--amend", "--no-edit")
        note(f"    amended {rev}: its upgrade adds {table}.w, its downgrade drops it")
        if applied_by == "branchmig":
            self.sync()
            return
        assert rev in self.project.status()["several_texts"], "status did not name the texts"
        output = self.move(self.pick(data, self.others(), "branch"), then, migrated_with={rev: old})
        # Reverted (with the text that fits), or kept whole in the branch's snapshot when
        # the entered branch's own was restored instead.
        assert (
            f"'{rev}' was reverted with its text" in output or "restoring the snapshot of" in output
        ), output

    @precondition(lambda self: self.p is not None)
    @rule(committed=st.booleans())
    def write_a_revision_cycle_then_remove_it(self, committed: bool) -> None:
        """Two scripts that name each other as down revision, left in the tree or
        committed: ``sync`` and ``status`` refuse (as Alembic does) and change nothing;
        then they are removed again (by ``git reset --hard`` when committed)."""
        p = self.project
        a, b = f"cyc{self.next_serial():03d}a", f"cyc{self.serial:03d}b"
        before = sqlite_dump(p.db_path)
        p.write(f"{a}.py", script(a, b, "    pass", "    pass"))
        p.write(f"{b}.py", script(b, a, "    pass", "    pass"))
        if committed:
            p.commit("a cycle")
        for args in (["sync"], ["status"]):
            proc = p.branchmig(*args)
            output = self.say("branchmig " + " ".join(args), proc)
            assert proc.returncode != 0 and "cycle" in output, output
            assert "Traceback" not in output, output
        assert sqlite_dump(p.db_path) == before, "a refused sync changed the database"
        if committed:
            self.must("git", "reset", "-q", "--hard", "HEAD~1")
        else:
            (p.versions / f"{a}.py").unlink()
            (p.versions / f"{b}.py").unlink()
        assert sqlite_dump(p.db_path) == before

    # -- rules: worktrees ------------------------------------------------------------------

    @precondition(has_others)
    @rule(data=st.data())
    def worktree_of_other_branch(self, data: st.DataObject) -> None:
        """``git worktree add ../wt-N BRANCH``: its own app.db at BRANCH's heads, and the
        main worktree's database untouched; then the worktree is removed."""
        other = self.pick(data, self.others(), "branch")
        self.worktrees += 1
        wt = self.project.root.parent / f"wt-{self.worktrees}"
        before = sqlite_dump(self.project.db_path)
        self.must(
            "git",
            "worktree",
            "add",
            "-q",
            str(wt),
            other,
            what=f"git worktree add ../{wt.name} {other}",
        )
        assert sqlite_version(wt / "app.db") == heads_of(self.tree(other)), (
            f"the worktree's app.db is at {sqlite_version(wt / 'app.db')}, "
            f"not at '{other}''s heads {heads_of(self.tree(other))}"
        )
        assert sqlite_dump(self.project.db_path) == before, (
            "adding a worktree changed the main worktree's database"
        )
        self.must("git", "worktree", "remove", "--force", str(wt))

    # -- rules: killed switches ----------------------------------------------------------

    def typical(self, seconds: list[float]) -> float:
        return sorted(seconds)[len(seconds) // 2]

    @precondition(has_others)
    @rule(data=st.data(), instant=st.floats(0, 1), recover_with=st.sampled_from(["sync", "status"]))
    def kill_a_switch_then_recover(
        self, data: st.DataObject, instant: float, recover_with: str
    ) -> None:
        """``branchmig switch`` killed (SIGKILL) at a uniformly random instant within its
        typical duration, then the next branchmig command: the checkout and the database
        are exactly as before the switch, or as after it."""
        p = self.project
        target = self.pick(data, self.others(), "branch")
        leaving, dropped = self.current(), self.record_leaving(target)
        before = sqlite_dump(p.db_path)
        delay = instant * self.typical(self.switch_seconds)
        log = self.folder / "killed.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [BRANCHMIG, "switch", target],
                cwd=p.root,
                env=p.environ(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            time.sleep(delay)
            killed = proc.poll() is None
            if killed:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        said = log.read_text().strip()
        note(
            f"$ branchmig switch {target}  # SIGKILL after {delay:.2f}s: "
            f"{'killed' if killed else f'had ended, exit {proc.returncode}'}"
            + (f"\n    {said}" if said else "")
        )
        output = said + "\n" + self.bm(recover_with)
        if self.current() == leaving:
            assert sqlite_dump(p.db_path) == before, (
                f"after the killed switch and 'branchmig {recover_with}', '{leaving}' is "
                "checked out but the database is not as before the switch"
            )
            # Then the switch again, unkilled: whichever way the kill landed, the rules
            # after this one see the same branches (hypothesis replays a sequence only
            # when its choices lead to the same states).
            output = self.bm("switch", target)
        assert self.current() == target, f"checked out: {self.current()}"
        assert sqlite_version(p.db_path) == heads_of(self.tree()), (
            f"'{target}' is checked out after the killed switch and 'branchmig "
            f"{recover_with}', but the database is at {sqlite_version(p.db_path)}: neither "
            "before nor after the switch"
        )
        self.left_branch(leaving, dropped)
        self.check_entered(target, output)

    @precondition(has_others)
    @rule(data=st.data(), instant=st.floats(0, 1))
    def kill_the_hook_of_a_checkout_then_sync(self, data: st.DataObject, instant: float) -> None:
        """The hook's Python child of ``git checkout`` killed (SIGKILL) at a uniformly
        random instant within a hook's typical duration; git finishes the checkout, and
        ``branchmig sync`` finishes the job."""
        p = self.project
        target = self.pick(data, self.others(), "branch")
        leaving, dropped = self.current(), self.record_leaving(target)
        delay = instant * self.typical(self.hook_seconds)
        git = subprocess.Popen(
            ["git", "checkout", "-q", target],
            cwd=p.root,
            env=p.environ({"BRANCHMIG_TEST_COLD": "1"}),  # the hook's own process, to kill
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started, killed = time.monotonic(), False
        while git.poll() is None and not killed:
            if time.monotonic() - started >= delay:
                for pid in descendants(git.pid):
                    if "branchmig.hookrun" in cmdline(pid):
                        with_suppressed_race(pid)
                        killed = True
                if time.monotonic() - started > delay + 0.2:
                    break  # no hook child (nothing to migrate): let git finish
            time.sleep(0.01)
        said = (git.communicate(timeout=60)[0] or "").strip()
        note(
            f"$ git checkout {target}  # hook SIGKILLed after {delay:.2f}s: {killed}"
            + (f"\n    {said}" if said else "")
        )
        assert git.returncode == 0, said
        output = said + "\n" + self.sync()
        assert self.current() == target
        self.left_branch(leaving, dropped)
        self.check_entered(target, output)

    # -- invariant A -----------------------------------------------------------------------

    @invariant()
    def database_is_at_the_working_trees_heads(self) -> None:
        if self.p is None:
            return
        data = self.project.status()
        heads = heads_of(self.tree())
        assert set(data["db_heads"]) == set(data["code_heads"]) == heads, data
        assert data["pending"] == [] and data["unknown"] == [], data
        assert sqlite_version(self.project.db_path) == heads, (
            f"alembic_version holds {sqlite_version(self.project.db_path)}, the tree's "
            f"heads are {heads}"
        )


def with_suppressed_race(pid: int) -> None:
    """SIGKILL ``pid``, which may have ended since it was seen."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def test_every_branch_gets_its_data_back_whatever_git_does(
    alembic_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Hypothesis builds the machine once per example: the session fixture and a fresh
    # folder reach it through a subclass, never through a function-scoped fixture.
    class Machine(LifecycleModel):
        template = alembic_template
        workdir = tmp_path_factory.mktemp("lifecycle-model")

    run_state_machine_as_test(Machine, settings=SETTINGS)


def _replay(
    template: Path,
    workdir: Path,
    steps: Callable[[LifecycleModel], None],
    picks: dict[str, str] | None = None,
) -> None:
    """Run ``steps`` once as the model's own rules (inside hypothesis, so that the rules'
    notes are kept), each choice the first, in sorted order, that starts with ``picks``'
    entry for its label (the model's own choice where ``picks`` is None)."""

    class Replay(LifecycleModel):
        def pick(self, data: st.DataObject, choices: list[str], label: str) -> str:
            if picks is None:
                return super().pick(data, choices, label)
            return next(c for c in sorted(choices) if c.startswith(picks[label]))

    Replay.template = template
    Replay.workdir = workdir

    @settings(max_examples=1, deadline=None, database=None)
    @given(st.just(None))
    def replay(_: None) -> None:
        m = Replay()
        try:
            steps(m)
        finally:
            m.teardown()

    replay()


def test_the_model_sees_an_upgrade_that_rewrites_the_left_branchs_rows(
    alembic_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """One sequence of the model's own rules, replayed by name (so that the loss it
    guards against is met on every run, not only in a soak): on main a table with rows;
    ``git checkout -b a``, a row more; main gets an upgrade that rewrites the table and
    is checked out (by the hook); back to 'a': its rows as they were."""

    def steps(m: LifecycleModel) -> None:
        m.seed_project_with_hooks("auto")
        m.commit_migration_and_write_rows("branchmig sync", 2)
        m.create_branch_here("a")
        m.write_rows(None, 1)  # type: ignore[arg-type]
        m.commit_destructive_upgrade_on_other_branch(None, "update", "git checkout")  # type: ignore[arg-type]
        m.move("a", "git checkout")

    picks = {"revision": "r", "altered": "main", "table of": "r"}
    _replay(alembic_template, tmp_path_factory.mktemp("lifecycle-replay"), steps, picks)


def test_the_model_reverts_a_migration_whose_helper_the_checkout_removed(
    alembic_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Replayed by name: on a branch 'a', a migration that creates its table through its
    own helper module, with rows; the hook's checkout of feature1 (no snapshot waits
    there) removes the helper and must still revert the migration; back to 'a': its
    rows."""

    def steps(m: LifecycleModel) -> None:
        m.seed_project_with_hooks("auto")
        m.create_branch_here("a")
        m.commit_migration_and_write_rows("branchmig sync", 2, helper=True)
        m.move("feature1", "git checkout")
        m.database_is_at_the_working_trees_heads()
        m.move("a", "git checkout")
        m.database_is_at_the_working_trees_heads()

    _replay(alembic_template, tmp_path_factory.mktemp("lifecycle-helper"), steps)


def test_an_upgrade_that_arrived_alters_a_branch_whose_applied_script_was_amended(
    alembic_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """'a' is left with a script plain Alembic applied, then amended (its scripts changed
    since its rows were kept); while it is away an upgrade dropping a column of one of its
    tables is committed on it. Coming back by switch, its snapshot is restored and that
    table is as the upgrade leaves it; every other table's rows are back (a soak found
    the model asking for the dropped column's rows)."""
    picks = {"branch": "feature2", "altered": "a", "table of": "f2a"}

    def steps(m: LifecycleModel) -> None:
        m.seed_project_with_hooks("auto")
        m.move("feature2", "git checkout")
        m.create_branch_here("a")
        m.amend_an_applied_migration(None, "alembic", "git checkout")  # type: ignore[arg-type]
        m.database_is_at_the_working_trees_heads()
        m.commit_destructive_upgrade_on_other_branch(None, "drop", "branchmig switch")  # type: ignore[arg-type]
        m.database_is_at_the_working_trees_heads()

    _replay(alembic_template, tmp_path_factory.mktemp("lifecycle-amended"), steps, picks)


def test_a_snapshot_migrated_with_an_amended_scripts_other_text_is_kept_with_its_rows(
    alembic_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """feature1's script applied by plain Alembic, then amended; its database kept in a
    snapshot when main's is restored, and restored when feature1 is switched to (nothing
    says which text migrated it). Leaving again, the revert learns the text that did;
    coming back, the snapshot is kept rather than restored, named, with every row in it
    (a soak found the model asking them back in the database)."""
    picks = {"branch": "main"}

    def steps(m: LifecycleModel) -> None:
        m.seed_project_with_hooks("auto")
        m.move("feature1", "git checkout")
        m.amend_an_applied_migration(None, "alembic", "git checkout")  # type: ignore[arg-type]
        assert "Restored snapshot" in m.move("feature1", "branchmig switch")
        # Nothing vouches for the amended script's text: the record claims none.
        assert m.project.status()["several_texts"], "the record claims a text"
        for branch in ("feature2", "feature1"):
            m.move(branch, "branchmig switch")
            m.database_is_at_the_working_trees_heads()

    _replay(alembic_template, tmp_path_factory.mktemp("lifecycle-texts"), steps, picks)


def test_the_model_meets_git_edges_in_every_run(
    alembic_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The new rules replayed by name, so that every run meets them (a soak meets them in
    any order): a migration plain Alembic applied, amended, and the hook's checkout of
    feature1 reverting it with the reflog's text; back again (its scripts changed, said);
    the same amend through branchmig; a branch made on the same commit without a
    checkout and entered; 'feature2' deleted and made again as 'feature2/n', then the
    other way round; a cycle written and committed, refused, removed."""
    picks = {"branch": "feature1", "deleted": "feature2"}

    def steps(m: LifecycleModel) -> None:
        m.seed_project_with_hooks("auto")
        m.create_branch_here("a")
        m.amend_an_applied_migration(None, "alembic", "git checkout")  # type: ignore[arg-type]
        m.database_is_at_the_working_trees_heads()
        m.move("a", "branchmig switch")
        m.database_is_at_the_working_trees_heads()
        m.amend_an_applied_migration(None, "branchmig", "git checkout")  # type: ignore[arg-type]
        m.database_is_at_the_working_trees_heads()
        m.create_branch_here_without_checkout("b")
        m.move("b", "git checkout")
        m.move("a", "git checkout")
        m.delete_a_branch_and_recreate_it_nested(None)  # type: ignore[arg-type]
        picks["deleted"] = "feature2/n"
        m.delete_a_branch_and_recreate_it_nested(None)  # type: ignore[arg-type]
        m.database_is_at_the_working_trees_heads()
        m.write_a_revision_cycle_then_remove_it(committed=False)
        m.write_a_revision_cycle_then_remove_it(committed=True)
        m.database_is_at_the_working_trees_heads()

    _replay(alembic_template, tmp_path_factory.mktemp("lifecycle-edges"), steps, picks)


def test_a_trip_with_no_hook_between_branches_of_the_same_scripts_keeps_each_ones_rows(
    alembic_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Replayed by name: main with a table and rows; ``git checkout -b a`` and a row more
    (the hook keeps main's rows); back to main by the hook (a's rows kept as its
    snapshot), a row more there; then main → a → main with no hook, and ``sync``: a's
    snapshot is still a's (the sync used to take the live rows for a's and replace it)."""
    picks = {"revision": "r", "table of": "r", "via": "a"}

    def steps(m: LifecycleModel) -> None:
        m.seed_project_with_hooks("auto")
        m.commit_migration_and_write_rows("branchmig sync", 2)
        m.create_branch_here("a")
        m.write_rows(None, 1)  # type: ignore[arg-type]
        m.move("main", "git checkout")
        m.write_rows(None, 1)  # type: ignore[arg-type]
        m.trip_without_hooks_then_sync(None)  # type: ignore[arg-type]
        m.move("a", "git checkout")
        m.database_is_at_the_working_trees_heads()

    _replay(alembic_template, tmp_path_factory.mktemp("lifecycle-trip"), steps, picks)
