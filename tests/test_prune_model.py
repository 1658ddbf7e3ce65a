"""Issue 24's promise as a model: no snapshot a checkout would restore is ever dropped
without the user naming it. Whatever mix of branch creations, renames, deletions,
re-creations, checkouts with data and saves by name a developer goes through, every
snapshot ``status`` calls restorable ("restored by checking out ...") survives a plain
``snapshot prune`` and the restricted ones (``--keep N``, ``--older-than DAYS``), its copy
still on disk; and what a plain prune drops is only what ``status`` called a stray.

A hypothesis ``RuleBasedStateMachine`` drives real git, the seed ``alembic init`` project
on a SQLite file (main: users; feature1: users.email; feature2: posts) and the real
``branchmig`` CLI. Leaving a branch that has ``users.email`` or ``posts`` for one without
them is destructive, so branchmig keeps a snapshot of it.

CI: ``BRANCHMIG_PRUNE_MODEL_EXAMPLES`` (default 4) examples of
``BRANCHMIG_PRUNE_MODEL_STEPS`` (12) steps.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from e2e_projects import Project, make_seed_project
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

EXAMPLES = int(os.environ.get("BRANCHMIG_PRUNE_MODEL_EXAMPLES", "4"))
STEPS = int(os.environ.get("BRANCHMIG_PRUNE_MODEL_STEPS", "12"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)
NAMES = ("feature1", "feature2", "main", "x", "y", "renamed")


class PruneModel(RuleBasedStateMachine):
    template: Path
    workdir: Path

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="prune-", dir=self.workdir))
        self.p: Project | None = None
        self.saves = 0

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def project(self) -> Project:
        assert self.p is not None
        return self.p

    def bm(self, *args: str) -> str:
        note(f"branchmig {' '.join(args)}")
        return self.project.ok(*args).stdout

    def git(self, *args: str) -> None:
        note(f"git {' '.join(args)}")
        self.project.git(*args)

    def branches(self) -> list[str]:
        out = self.project.git("for-each-ref", "--format=%(refname:short)", "refs/heads")
        return sorted(out.split())

    def current(self) -> str:
        return self.project.branch()

    def commits(self) -> list[str]:
        """Every commit a snapshot may have been taken on: the reflog keeps deleted ones."""
        out = self.project.git("rev-list", "--all", "--reflog")
        return sorted(out.split())

    def snapshots(self) -> dict[str, dict[str, Any]]:
        data = json.loads(self.bm("status", "--json"))
        return {s["key"]: s for s in data["snapshots"]}

    def indexed(self) -> dict[str, dict[str, Any]]:
        data = json.loads(self.bm("snapshot", "list", "--json"))
        return {s["key"]: s for s in data["snapshots"]}

    # -- rules --------------------------------------------------------------------------

    @initialize()
    def seed_project(self) -> None:
        self.p = make_seed_project(self.template, self.folder / "project", kind="alembic")
        self.bm("sync")

    @rule(data=st.data())
    def checkout_with_data(self, data: st.DataObject) -> None:
        """``branchmig switch`` to another branch, then rows written there."""
        others = [b for b in self.branches() if b != self.current()]
        if not others:
            return
        target = data.draw(st.sampled_from(others), label="switch to")
        self.bm("switch", target)
        with sqlite3.connect(self.project.db_path) as conn:
            columns = {r[1] for r in conn.execute("PRAGMA table_info(users)")}
            if "email" in columns:
                conn.execute("INSERT INTO users (name, email) VALUES ('u', 'u@x')")
            else:
                conn.execute("INSERT INTO users (name) VALUES ('u')")

    @rule(data=st.data())
    def create_branch(self, data: st.DataObject) -> None:
        """A new branch (or a re-created one) from any commit, deleted branches' too."""
        free = [n for n in NAMES if n not in self.branches()]
        if not free:
            return
        name = data.draw(st.sampled_from(free), label="new branch")
        start = data.draw(st.sampled_from(self.commits()), label="from commit")
        self.git("branch", name, start)

    @rule(data=st.data())
    def rename_branch(self, data: st.DataObject) -> None:
        free = [n for n in NAMES if n not in self.branches()]
        if not free:
            return
        old = data.draw(st.sampled_from(self.branches()), label="rename")
        new = data.draw(st.sampled_from(free), label="to")
        self.git("branch", "-m", old, new)

    @rule(data=st.data())
    def delete_branch(self, data: st.DataObject) -> None:
        others = [b for b in self.branches() if b != self.current()]
        if not others:
            return
        self.git("branch", "-q", "-D", data.draw(st.sampled_from(others), label="delete"))

    @rule()
    def save_by_name(self) -> None:
        self.saves += 1
        self.bm("snapshot", "save", f"save{self.saves}")

    @precondition(lambda self: self.p is not None)
    @rule(
        options=st.sampled_from(
            [(), ("--keep", "0"), ("--keep", "1"), ("--older-than", "0"), ("--dry-run",)]
        )
    )
    def prune(self, options: tuple[str, ...]) -> None:
        before = self.snapshots()
        restorable = {k for k, s in before.items() if s["restored_by"]}
        strays = {k for k, s in before.items() if s["stray"] or not s["present"]}
        note(f"restorable before prune: { {k: before[k]['restored_by'] for k in restorable} }")
        self.bm("snapshot", "prune", *options)
        after = self.indexed()
        lost = restorable - set(after)
        assert not lost, f"prune {options} dropped restorable snapshots {sorted(lost)}"
        assert all(after[k]["present"] for k in restorable)
        if not options:
            assert set(before) - set(after) <= strays, "plain prune dropped a non-stray"
        if options == ("--dry-run",):
            assert set(after) == set(before)

    @invariant()
    def status_and_list_agree_on_who_restores(self) -> None:
        if self.p is None:
            return
        by_status = {k: s["restored_by"] for k, s in self.snapshots().items()}
        by_list = {k: s["restored_by"] for k, s in self.indexed().items()}
        assert by_status == by_list


def test_prune_never_drops_a_snapshot_a_checkout_restores(
    alembic_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    class Machine(PruneModel):
        template = alembic_template
        workdir = tmp_path_factory.mktemp("prune-model")

    run_state_machine_as_test(Machine, settings=SETTINGS)
