"""What a migration's ``downgrade()`` (and a ``--multidb`` script's ``downgrade_<bind>()``)
does, read with ``ast`` (never imported): the operations that lose data, and those SQLite
refuses outside batch mode. Pure."""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Destructive:
    """A data-losing operation in a ``downgrade()`` the plan runs."""

    revision: str
    operation: str  # "drop_table", "drop_column", "execute"
    target: str  # "users" / "users.email" / the SQL's first words
    line: int = 0

    def describe(self) -> str:
        return f"{self.revision}: {self.operation} {self.target}"


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


_DESTRUCTIVE_SQL = re.compile(
    r"^\s*(DROP|DELETE|TRUNCATE)\b|^\s*ALTER\s+TABLE\b.*\bDROP\b", re.I | re.S
)


def find_destructive(data: bytes, revision: str) -> list[Destructive]:
    """The data-losing operations in the script's ``downgrade()``: ``drop_table``,
    ``drop_column`` (also in batch mode) and ``op.execute`` of DROP/DELETE/TRUNCATE."""
    try:
        tree = ast.parse(decode(data))
    except SyntaxError:
        return [Destructive(revision, "unknown", "script does not parse; assume it loses data")]
    found: list[Destructive] = []
    for func in _functions(tree, "downgrade"):
        batch_tables: dict[str, str] = {}
        for node in ast.walk(func):
            if isinstance(node, ast.With):
                for item in node.items:
                    call = item.context_expr
                    if (
                        isinstance(call, ast.Call)
                        and _attr(call.func) == "batch_alter_table"
                        and isinstance(item.optional_vars, ast.Name)
                    ):
                        batch_tables[item.optional_vars.id] = _const(call, 0, "table_name")
            if not isinstance(node, ast.Call):
                continue
            name = _attr(node.func)
            owner = (
                node.func.value.id
                if (isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name))
                else ""
            )
            if name == "drop_table":
                found.append(
                    Destructive(revision, "drop_table", _const(node, 0, "table_name"), node.lineno)
                )
            elif name == "drop_column":
                if owner in batch_tables:
                    target = f"{batch_tables[owner]}.{_const(node, 0, 'column_name')}"
                else:
                    target = f"{_const(node, 0, 'table_name')}.{_const(node, 1, 'column_name')}"
                found.append(Destructive(revision, "drop_column", target, node.lineno))
            elif name == "execute" and node.args:
                sql = node.args[0]
                if isinstance(sql, ast.Call) and sql.args:  # sa.text("...")
                    sql = sql.args[0]
                if isinstance(sql, ast.Constant) and isinstance(sql.value, str):
                    text = sql.value
                    if _DESTRUCTIVE_SQL.match(text):
                        found.append(
                            Destructive(
                                revision, "execute", " ".join(text.split())[:60], node.lineno
                            )
                        )
    # ast.walk is breadth-first: report in the order the script reads.
    return sorted(found, key=lambda d: d.line)


def find_unbatched(data: bytes, revision: str, function: str = "downgrade") -> list[Destructive]:
    """``op.drop_column`` and ``op.alter_column`` called in ``function`` outside
    ``batch_alter_table``: what SQLite cannot do in place to an indexed or constrained
    column."""
    try:
        tree = ast.parse(decode(data))
    except SyntaxError:
        return []
    found = []
    for func in _functions(tree, function):
        for node in ast.walk(func):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "op"
            ):
                continue
            if node.func.attr in ("drop_column", "alter_column"):
                target = f"{_const(node, 0, 'table_name')}.{_const(node, 1, 'column_name')}"
                found.append(Destructive(revision, node.func.attr, target, node.lineno))
    return sorted(found, key=lambda d: d.line)


def batch_hint(found: Sequence[Destructive], path: str) -> str:
    """What to change in a downgrade SQLite refuses, naming the revision and file."""
    first = found[0]
    table, _, column = first.target.partition(".")
    return (
        f"revision '{first.revision}' ({path}, line {first.line}) runs "
        f"op.{first.operation}({table!r}, {column!r}) outside batch mode, which SQLite "
        f"cannot do to an indexed or constrained column: in its downgrade, drop the "
        f"index first and write `with op.batch_alter_table({table!r}) as batch: "
        f"batch.{first.operation}({column!r})` (or set render_as_batch=True in env.py's "
        "context.configure)"
    )


def _functions(tree: ast.Module, name: str) -> list[ast.FunctionDef]:
    """The script's ``name()`` and, in a Flask-Migrate ``--multidb`` script, each
    database's ``name_<bind>()`` that it dispatches to."""
    return [
        func
        for func in tree.body
        if isinstance(func, ast.FunctionDef)
        and (func.name == name or func.name.startswith(f"{name}_"))
    ]


def _attr(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else ""


def _const(call: ast.Call, index: int, keyword: str) -> str:
    node: ast.expr | None = call.args[index] if len(call.args) > index else None
    for kw in call.keywords:
        if kw.arg == keyword:
            node = kw.value
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return "?" if node is None else ast.unparse(node)
