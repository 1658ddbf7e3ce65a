"""What a migration's ``downgrade()`` and ``upgrade()`` (and a ``--multidb`` script's
``downgrade_<bind>()`` / ``upgrade_<bind>()``) do, read with ``ast`` (never imported): the
operations that lose data in either direction, and those SQLite refuses outside batch
mode. Pure."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Destructive:
    """An operation that loses data in a step the plan runs: in the ``downgrade()`` of a
    revision it reverts, or the ``upgrade()`` of one it applies (``direction``)."""

    revision: str
    operation: str  # "drop_table", "drop_column", "alter_column", "execute", "unknown"
    target: str  # "users" / "users.email" / the SQL's first words / why it cannot be read
    line: int = 0
    direction: str = "downgrade"

    def describe(self) -> str:
        return f"{self.revision}: {self.direction} {self.operation} {self.target}"


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# Statements that drop, delete or rewrite rows; ALTER only when it drops or retypes.
_DESTRUCTIVE_SQL = re.compile(
    r"^\s*(DROP|DELETE|TRUNCATE|UPDATE|REPLACE)\b"
    r"|^\s*ALTER\s+TABLE\b.*\b(DROP|MODIFY|CHANGE|TYPE)\b"
    r"|^\s*ALTER\s+TYPE\b.*\bRENAME\s+VALUE\b",
    re.I | re.S,
)
# What a statement whose text is only partly known may start with and still lose nothing.
_HARMLESS_SQL = re.compile(
    r"^\s*(SELECT|INSERT|CREATE|COMMENT|GRANT|SET|SHOW|PRAGMA|ANALYZE|VACUUM)\b", re.I
)
_HOLE = "\x00"
_EXECUTE = ("execute", "exec_driver_sql", "executemany")
_ROW_WRITERS = {"update": "update", "delete": "delete"}  # sa.update(t), t.delete(), ...
_SESSIONS = ("Session", "sessionmaker", "scoped_session")


def find_destructive(data: bytes, revision: str, direction: str = "downgrade") -> list[Destructive]:
    """The operations that lose data in the script's ``downgrade()`` or ``upgrade()``
    (``direction``; with a ``--multidb`` script's ``<direction>_<bind>()`` and the
    script's own functions they call): ``drop_table``, ``drop_column`` (also in batch
    mode), ``alter_column`` changing ``type_`` or ``nullable``, SQL run by any
    ``execute`` that drops, deletes, truncates, updates or alters-and-drops, row
    updates and deletes built with SQLAlchemy, and an ORM session. What cannot be read (a
    script that does not parse, SQL that is not a literal) is an ``unknown``: assume it
    loses data."""
    try:
        tree = ast.parse(decode(data))
    except SyntaxError:
        return [
            Destructive(
                revision, "unknown", "script does not parse; assume it loses data", 0, direction
            )
        ]
    found: dict[tuple[int, str], Destructive] = {}
    for func in _reached(tree, direction):
        for d in _in_function(func, revision, direction):
            # execute(sa.update(t)) is one loss, seen at both calls
            found.setdefault((d.line, d.operation), d)
    # ast.walk is breadth-first: report in the order the script reads.
    return sorted(found.values(), key=lambda d: d.line)


def _in_function(func: ast.FunctionDef, revision: str, direction: str) -> list[Destructive]:
    found: list[Destructive] = []
    batch_tables: dict[str, str] = {}
    assigned = _assignments(func)
    for node in ast.walk(func):
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                if (
                    isinstance(call, ast.Call)
                    and _called(call) == "batch_alter_table"
                    and isinstance(item.optional_vars, ast.Name)
                ):
                    batch_tables[item.optional_vars.id] = _const(call, 0, "table_name")
        if isinstance(node, ast.Call):
            verdict = _call_verdict(node, batch_tables, assigned)
            if verdict is not None:
                found.append(Destructive(revision, *verdict, node.lineno, direction))
    return found


def _call_verdict(
    node: ast.Call, batch_tables: dict[str, str], assigned: dict[str, ast.expr]
) -> tuple[str, str] | None:
    """(operation, target) for what one call loses, None when it loses nothing."""
    name = _called(node)
    if name == "drop_table":
        return "drop_table", _const(node, 0, "table_name")
    if name == "drop_column" or (
        name == "alter_column" and any(k.arg in ("type_", "nullable") for k in node.keywords)
    ):
        owner = (
            node.func.value.id
            if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
            else ""
        )
        if owner in batch_tables:
            return name, f"{batch_tables[owner]}.{_const(node, 0, 'column_name')}"
        return name, f"{_const(node, 0, 'table_name')}.{_const(node, 1, 'column_name')}"
    if name in _EXECUTE and node.args:
        return _sql_verdict(node.args[0], assigned)
    if name in _SESSIONS:
        return "unknown", "an ORM session: rows may be rewritten; assume it loses data"
    if name in _ROW_WRITERS and _queries(node.func):
        return _ROW_WRITERS[name], _few_words(ast.unparse(node.func))
    if name == "bulk_update_mappings":
        return "update", _const(node, 0, "mapper")
    return None


def _sql_verdict(
    sql: ast.expr, assigned: dict[str, ast.expr], depth: int = 0
) -> tuple[str, str] | None:
    """(operation, target) for what ``execute(sql)`` loses, None when it loses nothing."""
    if isinstance(sql, ast.Name) and sql.id in assigned and depth < 5:
        return _sql_verdict(assigned[sql.id], assigned, depth + 1)
    for inner in ast.walk(sql):  # sa.update(t).where(...), t.delete(), ...
        if isinstance(inner, ast.Call) and _called(inner) in _ROW_WRITERS:
            return _ROW_WRITERS[_called(inner)], _few_words(ast.unparse(inner))
    if isinstance(sql, ast.Call) and _called(sql) == "text" and sql.args:
        return _sql_verdict(sql.args[0], assigned, depth + 1)
    if isinstance(sql, ast.Call) and any(  # sa.insert(t).values(...), sa.select(...)
        isinstance(inner, ast.Call) and _called(inner) in ("select", "insert")
        for inner in ast.walk(sql)
    ):
        return None
    text = _template(sql)
    if text is None:
        shown = _few_words(ast.unparse(sql))
        return "unknown", f"SQL that is not a literal ({shown}); assume it loses data"
    shown = _few_words(text.replace(_HOLE, "?"))
    if _DESTRUCTIVE_SQL.match(text):
        return "execute", shown
    if _HOLE in text and not _HARMLESS_SQL.match(text):
        return "unknown", f"SQL built at run time ({shown}); assume it loses data"
    return None


def _template(node: ast.expr) -> str | None:
    """The SQL a string expression makes, with a hole for each part only known when it
    runs; None when nothing of it is a literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = [
            v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else _HOLE
            for v in node.values
        ]
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        left = _template(node.left)
        if left is None:
            return None
        if isinstance(node.op, ast.Mod):
            return left
        right = _template(node.right)
        return left + (_HOLE if right is None else right)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    ):
        return _template(node.func.value)
    return None


def _few_words(text: str) -> str:
    return " ".join(text.split())[:60]


def _queries(func: ast.expr) -> bool:
    """Whether ``func`` (the ``.update`` or ``.delete`` called) is a method of a query or
    a table (``session.query(M).filter(...).update``, ``table.delete``, ``sa.delete``),
    not of a dict or a set."""
    if not isinstance(func, ast.Attribute):
        return True  # update(...) / delete(...) imported from sqlalchemy
    receiver = func.value
    while isinstance(receiver, (ast.Call, ast.Attribute)):
        if isinstance(receiver, ast.Call):
            if _attr(receiver.func) in (
                "query",
                "filter",
                "filter_by",
                "where",
                "execution_options",
            ):
                return True
            receiver = receiver.func
        else:
            if receiver.attr in ("c", "table", "__table__"):
                return True
            receiver = receiver.value
    return isinstance(receiver, ast.Name) and receiver.id in ("sa", "sqlalchemy")


def _assignments(func: ast.FunctionDef) -> dict[str, ast.expr]:
    """``name = value`` in ``func``: what a SQL variable holds, when it is set once."""
    seen: dict[str, list[ast.expr]] = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                seen.setdefault(target.id, []).append(node.value)
    return {name: values[0] for name, values in seen.items() if len(values) == 1}


@dataclass(frozen=True)
class Unbatched(Destructive):
    """An operation outside ``batch_alter_table`` that SQLite cannot do in place, and
    ``reason``: why (empty while that is not yet known)."""

    reason: str = ""


# SQLite renames a column in place (3.25+); every other change of a column is a rebuild.
_ALTER_IN_PLACE = {"table_name", "column_name", "new_column_name", "schema"}
_NO_ALTER_COLUMN = "SQLite has no ALTER COLUMN: a column is changed by rebuilding its table"
_NO_COMMENTS = "SQLite has no column comments, so Alembic cannot render the comment change"


def find_unbatched(data: bytes, revision: str, function: str = "downgrade") -> list[Destructive]:
    """``op.drop_column`` and ``op.alter_column`` called in ``function`` outside
    ``batch_alter_table``: what SQLite may not do in place (an alter_column that only
    renames it does; whether a drop_column can is decided by ``sqlite_refuses``)."""
    try:
        tree = ast.parse(decode(data))
    except SyntaxError:
        return []
    found: list[Destructive] = []
    for func in _functions(tree, function):
        for node in ast.walk(func):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "op"
            ):
                continue
            target = f"{_const(node, 0, 'table_name')}.{_const(node, 1, 'column_name')}"
            if node.func.attr == "drop_column":
                found.append(Unbatched(revision, "drop_column", target, node.lineno))
            elif node.func.attr == "alter_column":
                changes = {kw.arg for kw in node.keywords if kw.arg is not None}
                changes -= _ALTER_IN_PLACE | {k for k in changes if k.startswith("existing_")}
                if not changes:
                    continue
                reason = _NO_COMMENTS if changes == {"comment"} else _NO_ALTER_COLUMN
                found.append(
                    Unbatched(revision, "alter_column", target, node.lineno, reason=reason)
                )
    return sorted(found, key=lambda d: d.line)


def sqlite_refuses(
    found: Sequence[Destructive],
    columns: Mapping[str, Sequence[str]],
    *,
    sqlite_version: tuple[int, ...],
) -> list[Unbatched]:
    """Of ``find_unbatched``'s operations, those SQLite cannot do in place, each with
    why: every alter_column but a rename; a drop_column of a column ``columns`` says is
    indexed, UNIQUE, a key or named by a table constraint ('table.column' -> what), or
    any drop_column before SQLite 3.35."""
    out = []
    for d in found:
        reason = d.reason if isinstance(d, Unbatched) else ""
        if d.operation == "drop_column":
            what = columns.get(d.target)
            if sqlite_version < (3, 35):
                version = ".".join(str(n) for n in sqlite_version)
                reason = f"SQLite {version} cannot drop a column in place (3.35 and later can)"
            elif what:
                reason = f"the column is {' and '.join(what)}, which SQLite cannot drop in place"
            else:
                continue
        if reason:
            out.append(Unbatched(d.revision, d.operation, d.target, d.line, reason=reason))
    return out


# What SQLite (and Alembic's SQLite dialect) say when an operation cannot be done in
# place, and the cause in words ({0}: the name the message gives).
_REFUSALS = (
    (
        re.compile(r"error in index (\S+) after drop column"),
        "drop_column",
        "the column is indexed ({0}), which SQLite cannot drop in place",
    ),
    (
        re.compile(r'cannot drop UNIQUE column: "?([^"]+)'),
        "drop_column",
        "the column is UNIQUE, which SQLite cannot drop in place",
    ),
    (
        re.compile(r'cannot drop PRIMARY KEY column: "?([^"]+)'),
        "drop_column",
        "the column is the PRIMARY KEY, which SQLite cannot drop in place",
    ),
    (
        re.compile(r"error in (?:table|trigger|view) (\S+) after drop column"),
        "drop_column",
        "'{0}' still names the column (a FOREIGN KEY or CHECK constraint, a trigger, a view), "
        "so SQLite cannot drop it in place",
    ),
    (
        re.compile(r'near "DROP": syntax error', re.I),
        "drop_column",
        "this SQLite cannot drop columns (3.35 and later can)",
    ),
    (re.compile(r'near "ALTER": syntax error', re.I), "alter_column", _NO_ALTER_COLUMN),
    (re.compile(r"ColumnComment"), "alter_column", _NO_COMMENTS),
)


def sqlite_refusal(cause: str) -> tuple[str, str] | None:
    """(operation, why) when ``cause`` (a failed step's error) is SQLite refusing to do
    an operation in place; None for any other failure, whose fix is not batch mode."""
    for pattern, operation, why in _REFUSALS:
        match = pattern.search(cause)
        if match:
            return operation, why.format(*match.groups())
    return None


def fix_for_failure(data: bytes, revision: str, function: str, cause: str, path: str) -> str | None:
    """What to change in the script when its ``function`` failed on SQLite with
    ``cause``: batch mode, with SQLite's own reason; None when SQLite did not refuse an
    in-place operation the script runs outside batch mode."""
    refused = sqlite_refusal(cause)
    if refused is None:
        return None
    operation, why = refused
    found = [d for d in find_unbatched(data, revision, function) if d.operation == operation]
    if not found:
        return None
    column = re.search(r"no such column: (\w+)", cause)
    named = [d for d in found if column and d.target.endswith(f".{column.group(1)}")]
    first = (named or found)[0]
    return batch_hint(
        [Unbatched(first.revision, first.operation, first.target, first.line, reason=why)],
        path,
        function=function,
    )


def batch_hint(found: Sequence[Destructive], path: str, *, function: str = "downgrade") -> str:
    """What to change in a script SQLite refuses, naming the revision, the file, the
    reason and the batch-mode form."""
    first = found[0]
    table, _, column = first.target.partition(".")
    reason = first.reason if isinstance(first, Unbatched) and first.reason else ""
    why = f": {reason}" if reason else ", which SQLite cannot do in place"
    drop_index = "drop the index first, then " if "indexed" in reason else ""
    args = ", ..." if first.operation == "alter_column" else ""
    return (
        f"revision '{first.revision}' ({path}, line {first.line}) runs "
        f"op.{first.operation}({table!r}, {column!r}) outside batch mode{why}. In its "
        f"{function}, {drop_index}write `with op.batch_alter_table({table!r}) as batch: "
        f"batch.{first.operation}({column!r}{args})` (or set render_as_batch=True in env.py's "
        "context.configure)"
    )


def constrained_columns(texts: Iterable[bytes]) -> dict[str, list[str]]:
    """What the ``upgrade()`` of each script (in the order they apply) makes of columns
    that SQLite then cannot drop in place: 'table.column' -> ["indexed (ix_users_phone)",
    "UNIQUE", "the PRIMARY KEY", "in a FOREIGN KEY constraint"]. An index dropped by a
    later script is forgotten."""
    found: dict[str, list[str]] = {}
    indexes: dict[str, list[str]] = {}  # index name -> the columns it made "indexed"

    def mark(table: str, columns: Iterable[str], what: str) -> None:
        for column in columns:
            key = f"{table}.{column}"
            if what not in found.setdefault(key, []):
                found[key].append(what)

    for data in texts:
        try:
            tree = ast.parse(decode(data))
        except SyntaxError:
            continue
        for func in _functions(tree, "upgrade"):
            batch_tables = _batch_tables(func)
            for node in ast.walk(func):
                if not isinstance(node, ast.Call):
                    continue
                name = _attr(node.func)
                owner = _owner(node)
                batched = owner in batch_tables
                shift = 0 if batched else 1  # batch calls take no table argument
                table = batch_tables[owner] if batched else _const(node, 1, "table_name")
                if name in ("create_index", "create_unique_constraint", "create_primary_key"):
                    columns = _strings(node, 1 + shift, "columns")
                    what = {
                        "create_index": f"indexed ({_const(node, 0, 'index_name')})",
                        "create_unique_constraint": "UNIQUE",
                        "create_primary_key": "the PRIMARY KEY",
                    }[name]
                    if name == "create_index":
                        indexes[_const(node, 0, "index_name")] = [f"{table}.{c}" for c in columns]
                    mark(table, columns, what)
                elif name == "create_foreign_key" and not batched:
                    mark(_const(node, 1, "source_table"), _strings(node, 3, "local_cols"), _FK)
                elif name == "create_table":
                    table = _const(node, 0, "table_name")
                    for item in node.args[1:]:
                        if isinstance(item, ast.Call):
                            _mark_item(item, table, mark)
                elif name == "add_column":
                    column = node.args[0 if batched else 1] if len(node.args) > shift else None
                    if isinstance(column, ast.Call):
                        _mark_item(
                            column, table if batched else _const(node, 0, "table_name"), mark
                        )
                elif name == "drop_index":
                    for key in indexes.pop(_const(node, 0, "index_name"), []):
                        found[key] = [w for w in found.get(key, []) if not w.startswith("indexed")]
    return {key: what for key, what in found.items() if what}


_FK = "in a FOREIGN KEY constraint"


def _mark_item(call: ast.Call, table: str, mark: Callable[[str, Iterable[str], str], None]) -> None:
    """A ``sa.Column(...)`` or table constraint given to create_table / add_column."""
    kind = _attr(call.func) or (call.func.id if isinstance(call.func, ast.Name) else "")
    if kind == "Column":
        column = _const(call, 0, "name")
        flags = {kw.arg for kw in call.keywords if _true(kw.value)}
        if "primary_key" in flags:
            mark(table, [column], "the PRIMARY KEY")
        if "unique" in flags:
            mark(table, [column], "UNIQUE")
        if "index" in flags:
            mark(table, [column], "indexed")
        if any(isinstance(a, ast.Call) and _name(a.func) == "ForeignKey" for a in call.args):
            mark(table, [column], _FK)
    elif kind in ("UniqueConstraint", "PrimaryKeyConstraint"):
        what = "UNIQUE" if kind == "UniqueConstraint" else "the PRIMARY KEY"
        mark(
            table,
            [
                a.value
                for a in call.args
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            ],
            what,
        )
    elif kind == "ForeignKeyConstraint":
        mark(table, _strings(call, 0, "columns"), _FK)


def _true(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _name(func: ast.expr) -> str:
    return _attr(func) or (func.id if isinstance(func, ast.Name) else "")


def _strings(call: ast.Call, index: int, keyword: str) -> list[str]:
    node: ast.expr | None = call.args[index] if len(call.args) > index else None
    for kw in call.keywords:
        if kw.arg == keyword:
            node = kw.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [
            e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
        ]
    return []


def _owner(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.value.id
    return ""


def _batch_tables(func: ast.FunctionDef) -> dict[str, str]:
    """``with op.batch_alter_table("t") as b``: b -> t."""
    tables = {}
    for node in ast.walk(func):
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                if (
                    isinstance(call, ast.Call)
                    and _attr(call.func) == "batch_alter_table"
                    and isinstance(item.optional_vars, ast.Name)
                ):
                    tables[item.optional_vars.id] = _const(call, 0, "table_name")
    return tables


def _reached(tree: ast.Module, name: str) -> list[ast.FunctionDef]:
    """``_functions(tree, name)`` and the script's own module-level functions they call,
    at any depth (a data migration often lives in a helper of the script)."""
    defined = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    reached = _functions(tree, name)
    names = {f.name for f in reached}
    todo = list(reached)
    while todo:
        for node in ast.walk(todo.pop()):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in defined
                and node.func.id not in names
            ):
                names.add(node.func.id)
                reached.append(defined[node.func.id])
                todo.append(defined[node.func.id])
    return reached


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


def _called(call: ast.Call) -> str:
    """The name a call calls: ``op.drop_table(...)`` and ``drop_table(...)`` alike."""
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _const(call: ast.Call, index: int, keyword: str) -> str:
    node: ast.expr | None = call.args[index] if len(call.args) > index else None
    for kw in call.keywords:
        if kw.arg == keyword:
            node = kw.value
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return "?" if node is None else ast.unparse(node)
