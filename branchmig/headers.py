"""A migration script's header read from its text, as Alembic finds it by running the
script, but without running it. Pure.

Alembic imports each script and reads four module attributes: ``revision``,
``down_revision``, ``branch_labels``, ``depends_on``. Whatever top-level statement binds
them counts: a plain or annotated assignment, one of a statement list on one line
(``revision = 'b'; down_revision = 'a'``), a chained one (``branch_labels = depends_on =
None``), tuple and list unpacking (``revision, down_revision = 'b', 'a'``, starred
targets included), a walrus statement. Those are read here, the last binding winning as it
does when the module runs. Any other binding of these names at module level (inside an
``if`` or ``try``, a ``for`` target, an import, a ``def``) cannot be read without running
the script: it is an error naming the file and line, never a silent guess.

Reading is in three tiers, cheapest first: what ``alembic revision`` writes (each header a
line of its own, a plain value) by regular expressions; the same lines compiled together;
else the whole file parsed with ``ast``. A file whose body does not parse (old scripts
that only parse as Python 2) is read statement by statement from the lines that mention
the names. As Alembic does, a file it would load (any ``.py`` in the versions folder but
``__init__*`` and editor locks) without a ``revision`` is an error, unless it is named by
its revision (Alembic 0.1's ``<hex>.py``), and so is one without ``down_revision``.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from branchmig.downgrades import decode
from branchmig.errors import ScriptError

NAMES = frozenset({"revision", "down_revision", "branch_labels", "depends_on"})

# A header as ``alembic revision`` writes it: the name at the start of a line, perhaps an
# annotation, then ``=`` (not ``==``, and not a walrus's ``:=``).
_HEADER_START = re.compile(
    r"^(revision|down_revision|branch_labels|depends_on)[ \t]*(?::(?!=)[^=\n]*)?=(?!=)", re.M
)
# What follows a name at the start of a line for it to be such a header.
_HEADER_TAIL = re.compile(r"[ \t]*(?::(?!=)[^=\n]*)?=(?!=)")
# Alembic 0.1's scripts, named by their revision, which Alembic still reads as such.
_LEGACY_NAME = re.compile(r"([a-f0-9]+)\.py$")

_STR = r"""(?:'[^'\\\n]*'|"[^"\\\n]*")"""
_SIMPLE_VALUE = re.compile(
    rf"[ \t]*(None|{_STR}|\([ \t]*(?:{_STR}[ \t]*,[ \t]*)*(?:{_STR}[ \t]*,?[ \t]*)?\)"
    rf"|\[[ \t]*(?:{_STR}[ \t]*,[ \t]*)*(?:{_STR}[ \t]*)?\])[ \t]*(?:#[^\n]*)?\r?$",
    re.M,
)
_STR_ITEM = re.compile(_STR)


class _Value:
    """A header value already known, read without ``ast`` (or unpacked from a literal)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


_Found = dict[str, tuple["ast.expr | _Value", int]]


def parse_header(data: bytes, path: str) -> dict[str, Any]:
    """The header values of one script Alembic would load.

    Returns ``{"revision": str, "down": [...], "labels": [...], "depends": [...],
    "warnings": [...]}``. ``revision`` and ``down_revision`` must be literals; a
    ``branch_labels`` or ``depends_on`` that is not one is a warning (treated as unknown).
    Raises ``ScriptError`` naming the file and line for anything Alembic would fail on or
    that cannot be read without running the script.
    """
    text = decode(data)
    mentions = _mentions(text)
    matches = _plain_headers(text, mentions)
    found = None
    legacy = None
    if matches:
        found = _parse_fast(text, matches) or _parse_simple(text, matches)
    broken: SyntaxError | None = None
    if found is None:
        found, broken = _parse_careful(text, path, mentions)
    if "revision" not in found:
        legacy = _LEGACY_NAME.match(path.rsplit("/", 1)[-1])
        if broken is not None:
            raise ScriptError(
                f"{path}:{broken.lineno or 1}: {broken.msg}; Alembic cannot load this "
                "script, and no 'revision' can be read from it: fix the script (or move it "
                "out of the versions folder)"
            )
        if legacy is None:
            raise ScriptError(
                f"{path}: no 'revision' assignment; Alembic fails loading every .py file in "
                "the versions folder without one: give it a header (revision = '...') or "
                "move it out of the folder"
            )
        found["revision"] = (_Value(legacy.group(1)), 1)
    if "down_revision" not in found:
        raise ScriptError(
            f"{path}: no 'down_revision' assignment; Alembic needs one to load the script "
            "(down_revision = None for a first revision)"
        )
    values = _values(found, path)
    if legacy is not None:
        values["named"] = True  # by the file's name: not to be remembered by content alone
    return values


def _values(found: _Found, path: str) -> dict[str, Any]:
    warnings: list[str] = []

    def literal(name: str, *, required: bool) -> Any:
        if name not in found:
            return None
        node, line = found[name]
        if isinstance(node, _Value):
            return node.value
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            message = f"{path}:{line}: {name} is not a literal ({ast.unparse(node)[:60]})"
            if required:
                raise ScriptError(
                    message + "; branchmig reads headers without importing "
                    "the script, so write the value itself"
                ) from None
            warnings.append(message + "; treated as unknown")
            return None

    revision = literal("revision", required=True)
    if not isinstance(revision, str) or not revision:
        raise ScriptError(f"{path}:{found['revision'][1]}: revision must be a non-empty string")
    return {
        "revision": revision,
        "down": _as_ids(literal("down_revision", required=True), path, "down_revision", found),
        "labels": _as_ids(literal("branch_labels", required=False), path, "branch_labels", found),
        "depends": _as_ids(literal("depends_on", required=False), path, "depends_on", found),
        "warnings": warnings,
    }


def _as_ids(value: Any, path: str, name: str, found: _Found) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (tuple, list, set, frozenset)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ScriptError(
        f"{path}:{found[name][1]}: {name} must be None, a string or a tuple of strings"
    )


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


# -- the common case: each header a line of its own ----------------------------------------


_Header = tuple[str, int, int]  # the name, where its line starts, where its value starts


def _mentions(text: str) -> list[tuple[str, int, int]]:
    """Each mention of the names as a variable (not an attribute, not part of a longer
    word): (name, start, end), in order. ``str.find`` rather than a regular expression:
    this runs on every script of a history read cold."""
    found = []
    for word in ("revision", "branch_labels", "depends_on"):
        at = text.find(word)
        while at >= 0:
            start, end = at, at + len(word)
            at = text.find(word, end)
            if word == "revision" and text.startswith("down_", start - 5):
                start -= 5
            before = text[start - 1 : start] if start else ""
            if before.isidentifier() or before.isdigit() or before == ".":
                continue
            after = text[end : end + 1]
            if after.isidentifier() or after.isdigit():
                continue
            found.append((text[start:end], start, end))
    found.sort(key=lambda m: m[1])
    return found


def _plain_headers(text: str, mentions: list[tuple[str, int, int]]) -> list[_Header] | None:
    """The headers as ``alembic revision`` writes them, when the names appear nowhere else
    but in comment lines and string keys (then no other statement can bind them)."""
    headers: list[_Header] = []
    for name, start, end in mentions:
        if start == 0 or text[start - 1] == "\n":
            tail = _HEADER_TAIL.match(text, end)
            if tail is not None:
                headers.append((name, start, tail.end()))
                continue
        line_start = text.rfind("\n", 0, start) + 1
        if text[line_start:start].lstrip().startswith("#"):
            continue
        quote = text[start - 1 : start]
        if quote in ("'", '"') and text[end : end + 1] == quote:
            continue
        return None
    return headers or None


def _parse_fast(text: str, matches: list[_Header]) -> _Found | None:
    """Headers whose values are plain string literals, None, or tuples/lists of them (what
    ``alembic revision`` writes), read without compiling anything."""
    found: _Found = {}
    for name, start, end in matches:
        value = _SIMPLE_VALUE.match(text, end)
        if value is None:
            return None
        raw = value.group(1)
        if raw == "None":
            node = _Value(None)
        elif raw[0] in "'\"":
            node = _Value(raw[1:-1])
        else:
            items = [i[1:-1] for i in _STR_ITEM.findall(raw)]
            node = _Value(tuple(items) if raw[0] == "(" else items)
        found[name] = (node, _line_of(text, start))
    return found


def _parse_simple(text: str, matches: list[_Header]) -> _Found | None:
    """Each header on a line of its own, one ``compile`` for all of them."""
    lines = []
    for _, start, _ in matches:
        end = text.find("\n", start)
        lines.append(text[start : end if end >= 0 else len(text)])
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return None
    if len(tree.body) != len(matches):
        return None
    found: _Found = {}
    for (name, start, _), stmt in zip(matches, tree.body, strict=True):
        single = isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
        if not single and not (isinstance(stmt, ast.AnnAssign) and stmt.value is not None):
            return None  # chained, or not an assignment: the careful way
        assert isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None
        found[name] = (stmt.value, _line_of(text, start))
    return found


# -- every other form: the module's statements ---------------------------------------------


def _parse_careful(
    text: str, path: str, mentions: list[tuple[str, int, int]]
) -> tuple[_Found, SyntaxError | None]:
    """The bindings of the whole module; for a module that does not parse, those of each
    top-level statement that mentions the names, and the module's syntax error."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError) as err:
        broken = err if isinstance(err, SyntaxError) else SyntaxError(str(err))
        return _statement_by_statement(text, path, mentions), broken
    found: _Found = {}
    _collect(tree.body, found, path, 0)
    return found, None


def _statement_by_statement(text: str, path: str, mentions: list[tuple[str, int, int]]) -> _Found:
    found: _Found = {}
    seen: set[int] = set()
    for _, at, _ in mentions:
        start = text.rfind("\n", 0, at) + 1
        if start in seen or text[start : start + 1] in (" ", "\t", "#"):
            continue  # read already, indented (not a top-level statement) or a comment
        seen.add(start)
        snippet = text[start : _statement_end(text, start)]
        line = _line_of(text, start)
        try:
            tree = ast.parse(snippet)
        except SyntaxError as err:
            header = _HEADER_START.match(text, start)
            if header is not None:
                raise ScriptError(
                    f"{path}:{line + (err.lineno or 1) - 1}: cannot parse the "
                    f"'{header.group(1)}' header: {err.msg}"
                ) from None
            continue  # a line of a body that does not parse, not a header
        _collect(tree.body, found, path, line - 1)
    return found


def _statement_end(text: str, start: int) -> int:
    """Index just past the logical line that starts at ``start``."""
    depth = 0
    i, n = start, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            triple = text[i : i + 3] in ('"""', "'''")
            quote = text[i : i + 3] if triple else c
            i += len(quote)
            while i < n and not text.startswith(quote, i):
                if text[i] == "\\":
                    i += 1
                elif text[i] == "\n" and not triple:
                    break
                i += 1
            i += len(quote)
            continue
        if c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "\\" and text[i + 1 : i + 2] == "\n":
            i += 2
            continue
        elif c == "\n" and depth <= 0:
            return i
        i += 1
    return n


def _collect(body: list[ast.stmt], found: _Found, path: str, offset: int) -> None:
    """The bindings of the names by ``body``'s statements, in order (``offset``: lines
    before the text parsed)."""
    for stmt in body:
        line = stmt.lineno + offset
        if isinstance(stmt, ast.Assign):
            _refuse_other(stmt.value, path, offset)
            for target in stmt.targets:
                _bind(target, stmt.value, line, found, path)
        elif isinstance(stmt, ast.AnnAssign):
            if stmt.value is not None:
                _refuse_other(stmt.value, path, offset)
                _bind(stmt.target, stmt.value, line, found, path)
        elif (
            isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.NamedExpr)
            and stmt.value.target.id in NAMES
        ):
            _refuse_other(stmt.value.value, path, offset)
            _bind(stmt.value.target, stmt.value.value, line, found, path)
        else:
            _refuse_other(stmt, path, offset)


def _bind(target: ast.expr, value: ast.expr, line: int, found: _Found, path: str) -> None:
    """``target = value``: each name of ours in ``target`` gets its part of ``value``."""
    if isinstance(target, ast.Name):
        if target.id in NAMES:
            found[target.id] = (value, line)
        return
    if not isinstance(target, (ast.Tuple, ast.List)) or not _names_in(target):
        return  # an attribute or an item: not a module variable
    elts = target.elts
    if (
        isinstance(value, (ast.Tuple, ast.List))
        and len(value.elts) == len(elts)
        and not any(isinstance(e, ast.Starred) for e in (*elts, *value.elts))
    ):
        for each_target, each_value in zip(elts, value.elts, strict=True):
            _bind(each_target, each_value, line, found, path)
        return
    try:
        unpacked = ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        for name in _names_in(target):
            found[name] = (value, line)  # reported as "not a literal" where it matters
        return
    _unpack(target, unpacked, line, found, path)


def _unpack(target: ast.expr, value: Any, line: int, found: _Found, path: str) -> None:
    """``target = value`` for a value already evaluated, unpacked as Python unpacks it."""
    if isinstance(target, ast.Name):
        if target.id in NAMES:
            found[target.id] = (_Value(value), line)
        return
    if not isinstance(target, (ast.Tuple, ast.List)):
        return
    elts = target.elts
    try:
        items = list(value)
    except TypeError:
        raise ScriptError(
            f"{path}:{line}: cannot unpack {type(value).__name__} into "
            f"{', '.join(sorted(_names_in(target)))}"
        ) from None
    stars = [i for i, e in enumerate(elts) if isinstance(e, ast.Starred)]
    targets: list[ast.expr] = list(elts)
    parts: list[Any] = items
    if stars:
        k, after = stars[0], len(elts) - stars[0] - 1
        if len(items) >= len(elts) - 1:
            starred = elts[k]
            assert isinstance(starred, ast.Starred)
            targets[k] = starred.value
            parts = [*items[:k], items[k : len(items) - after], *items[len(items) - after :]]
    if len(parts) != len(targets):
        raise ScriptError(
            f"{path}:{line}: {len(items)} values to unpack into {len(elts)} targets "
            f"({', '.join(sorted(_names_in(target)))})"
        )
    for each_target, each_value in zip(targets, parts, strict=True):
        _unpack(each_target, each_value, line, found, path)


def _names_in(target: ast.expr) -> set[str]:
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name) and n.id in NAMES}


def _refuse_other(node: ast.AST, path: str, offset: int) -> None:
    """Raise when ``node`` binds one of the names in a way that cannot be read without
    running the script (inside a block, as a loop target, an import, a ``def``...)."""
    stack = [node]
    while stack:
        n = stack.pop()
        name: str | None = None
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = n.name  # its body runs later, in a scope of its own
        elif isinstance(n, ast.Lambda) or (isinstance(n, ast.AnnAssign) and n.value is None):
            continue  # a scope of its own; an annotation alone binds nothing
        elif isinstance(n, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            # Its loop variables are its own; a walrus inside binds the module's name.
            for comp in n.generators:
                stack.append(comp.iter)
                stack.extend(comp.ifs)
            if isinstance(n, ast.DictComp):
                stack.extend((n.key, n.value))
            else:
                stack.append(n.elt)
            continue
        elif isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            name = n.id
        elif isinstance(n, ast.ExceptHandler):
            name = n.name
        elif isinstance(n, ast.alias):
            name = n.asname or n.name.split(".")[0]
        elif isinstance(n, (ast.MatchAs, ast.MatchStar)):
            name = n.name
        elif isinstance(n, ast.MatchMapping):
            name = n.rest
        if name in NAMES:
            lineno: int = getattr(n, "lineno", None) or getattr(node, "lineno", None) or 1
            raise ScriptError(
                f"{path}:{lineno + offset}: '{name}' is bound in a form branchmig cannot "
                "read without running the script; write it at the top level as "
                f"{name} = <literal>"
            )
        if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(n))
