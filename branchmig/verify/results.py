"""What verify, drift and models find, as values, and the one-line messages that
say it (``reports.verify`` renders them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from branchmig.graph import Revision
from branchmig.schema import Difference

Outcome = Literal["ok", "failed", "left traces", "not run"]
FindingKind = Literal["upgrade-failed", "downgrade-failed", "trace", "upgrade-again-failed"]


def quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class Finding:
    """Something wrong with one revision's migrations, said in one line."""

    revision: str
    path: str
    kind: FindingKind
    message: str
    differences: tuple[Difference, ...] = ()


@dataclass(frozen=True)
class RevisionCheck:
    """How each of a revision's three runs went."""

    revision: str
    path: str
    upgrade: Outcome = "not run"
    downgrade: Outcome = "not run"
    upgrade_again: Outcome = "not run"


@dataclass(frozen=True)
class VerifyResult:
    ref: str  # as given ("" is the working tree)
    against: str
    backend: str  # "sqlite", "postgresql", "mysql"
    shared: tuple[str, ...]  # the latest revisions REF shares with BASE
    checks: tuple[RevisionCheck, ...]
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class DriftResult:
    database: str  # masked URL of the live database
    backend: str
    heads: tuple[str, ...]
    differences: tuple[Difference, ...]  # old: what the migrations make, new: the live one

    @property
    def ok(self) -> bool:
        return not self.differences


@dataclass(frozen=True)
class ModelsResult:
    heads: tuple[str, ...]  # of the working tree, where the scratch database was built
    differences: tuple[str, ...]  # one line each: what a new migration would have to do

    @property
    def ok(self) -> bool:
        return not self.differences


def describe_trace(diff: Difference) -> str:
    """One difference between before an upgrade (old) and after its downgrade (new)."""
    if diff.kind == "rows":
        return f"table {diff.where} holds {diff.new}, {diff.old} before the upgrade"
    if diff.kind == "content":
        return f"table {diff.where} holds as many rows as before the upgrade, but not the same ones"
    if diff.change == "added":
        return f"{diff.kind} {diff.where} is left behind"
    if diff.change == "removed":
        return f"{diff.kind} {diff.where} is gone (it was there before the upgrade)"
    return f"{diff.kind} {diff.where} is {diff.new}, was {diff.old} before the upgrade"


def trace_message(rev: Revision, left: Sequence[Difference]) -> str:
    return (
        f"The downgrade of '{rev.id}' ({rev.path}) does not undo its upgrade: "
        f"{'; '.join(describe_trace(d) for d in left)}. Undo it in downgrade()"
    )


def describe_model_diff(diff: Any) -> str:
    """One of autogenerate's differences, as ``alembic check`` lists them, by name: a
    tuple ``("add_column", schema, table, column)``, or a list of ``modify_*`` tuples."""
    if isinstance(diff, list):
        return "; ".join(describe_model_diff(d) for d in diff)
    op = str(diff[0])
    if op.startswith("modify_"):  # (op, schema, table, column, existing, old, new)
        return f"{op} '{diff[2]}.{diff[3]}': {diff[5]!r} in the database, {diff[6]!r} in the models"
    if op in ("add_column", "remove_column"):
        return f"{op} '{diff[2]}.{diff[3].name}'"
    thing = diff[-1]
    name = getattr(thing, "name", None) or str(thing)
    table = getattr(getattr(thing, "table", None), "name", None)
    return f"{op} '{table}.{name}'" if table and table != name else f"{op} '{name}'"
