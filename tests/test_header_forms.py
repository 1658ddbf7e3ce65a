"""Headers in every form Python allows for their assignment, read as Alembic reads them:
generated scripts are loaded by Alembic's own ``Script._from_path`` from a real folder and
read by branchmig from their text; both give the same four values, or both refuse."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic.script import Script, ScriptDirectory
from alembic.util import to_tuple
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from branchmig.errors import ScriptError
from branchmig.headers import parse_header

NAMES = ("revision", "down_revision", "branch_labels", "depends_on")
ANNOTATION = {
    "revision": ": str",
    "down_revision": ": Union[str, Sequence[str], None]",
    "branch_labels": ": Union[str, Sequence[str], None]",
    "depends_on": ": Union[str, Sequence[str], None]",
}

# Revision ids and the ids they name are drawn apart: a revision naming itself is a loop
# Alembic refuses at load and branchmig at the graph, which is not what is compared here.
own_ids = st.text("rst0123", min_size=1, max_size=4).map(lambda s: "r" + s)
other_ids = st.text("abc0123", min_size=1, max_size=4).map(lambda s: "p" + s)


def id_values(ids: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        ids,
        st.lists(ids, max_size=3).map(tuple),
        st.lists(ids, max_size=3),
    )


def values(name: str) -> st.SearchStrategy[Any]:
    if name == "revision":
        return own_ids
    return id_values(other_ids)


def literal(value: Any, brackets: bool) -> str:
    """``value`` as Python source; a tuple perhaps written without its parentheses."""
    if isinstance(value, tuple) and len(value) > 1 and not brackets:
        return ", ".join(repr(v) for v in value)
    return repr(value)


@st.composite
def statements(draw: st.DrawFn, names: list[str], values: dict[str, Any]) -> str:
    """One statement binding ``names`` (in that order) to their ``values``."""
    forms: list[str] = ["unpack", "unpack_whole", "starred"] if len(names) > 1 else []
    if len(names) == 1:
        forms += ["plain", "annotated", "walrus", "noise"]
    chainable = len({repr(values[n]) for n in names}) == 1 and not (
        "revision" in names and {"down_revision", "depends_on"} & set(names)
    )
    if chainable:
        forms.append("chained")
    form = draw(st.sampled_from(forms))
    first = names[0]
    if form == "plain":
        return f"{first} = {literal(values[first], draw(st.booleans()))}"
    if form == "annotated":
        return f"{first}{ANNOTATION[first]} = {literal(values[first], True)}"
    if form == "walrus":
        return f"({first} := {literal(values[first], True)})"
    if form == "noise":  # another variable beside it in an unpacking
        return f"_x, {first} = 1, {literal(values[first], True)}"
    if form == "chained":
        return " = ".join(names) + f" = {literal(values[first], draw(st.booleans()))}"
    open_, close = draw(st.sampled_from([("", ""), ("(", ")"), ("[", "]")]))
    targets = open_ + ", ".join(names) + close
    if form == "unpack":
        items = ", ".join(literal(values[n], True) for n in names)
        value_open, value_close = draw(st.sampled_from([("", ""), ("(", ")"), ("[", "]")]))
        return f"{targets} = {value_open}{items}{value_close}"
    if form == "unpack_whole":  # from one literal, not a display of the same length
        return f"{targets} = {tuple(values[n] for n in names)!r}"
    # starred: the last name takes the rest as a list, so its value must be one
    last = names[-1]
    rest = values[last]
    if not isinstance(rest, list):
        return f"{targets} = {tuple(values[n] for n in names)!r}"
    stars = open_ + ", ".join([*names[:-1], "*" + last]) + close
    items = [literal(values[n], True) for n in names[:-1]] + [repr(v) for v in rest]
    return f"{stars} = {', '.join(items)}" + ("," if len(items) == 1 else "")


@st.composite
def headers(draw: st.DrawFn) -> str:
    """A script's text: the four names (some perhaps missing, some bound twice) in
    statements of every form, on lines of their own or in statement lists."""
    present = [n for n in NAMES if n in ("revision", "down_revision") or draw(st.booleans())]
    if draw(st.integers(0, 9)) == 0:  # now and then one Alembic needs is missing
        present.remove(draw(st.sampled_from(["revision", "down_revision"])))
    order = draw(st.permutations(present))
    chosen = {n: draw(values(n)) for n in order}
    groups: list[list[str]] = []
    for name in order:
        if groups and draw(st.booleans()):
            groups[-1].append(name)
        else:
            groups.append([name])
    lines = []
    if draw(st.booleans()):  # an earlier value, bound again below: the last one counts
        name = draw(st.sampled_from(list(NAMES)))
        lines.append(f"{name} = {draw(values(name))!r}")
    for group in groups:
        loop = "revision" in group and bool({"down_revision", "depends_on"} & set(group))
        if len(group) > 1 and not loop and draw(st.booleans()):
            common = chosen["revision" if "revision" in group else group[0]]
            chosen.update(dict.fromkeys(group, common))  # a chain, now and then
        lines.append(draw(statements(group, chosen)))
    text, joined = "", draw(st.lists(st.booleans(), min_size=len(lines), max_size=len(lines)))
    for line, on_one_line in zip(lines, joined, strict=True):
        text += ("; " if on_one_line and text else "\n" if text else "") + line
    return (
        '"""A generated script.\n\nRevision ID: x\n"""\n'
        "from typing import Sequence, Union\n\n"
        "# revision identifiers, used by Alembic.\n"
        f"{text}\n\n\ndef upgrade() -> None:\n    pass\n"
    )


def as_alembic(path: Path, scripts: ScriptDirectory) -> tuple[Any, ...] | None:
    """The four values Alembic loads from ``path``; None when it refuses the script."""
    try:
        script = Script._from_path(scripts, path)
    except Exception:  # noqa: BLE001 - any failure to load is a refusal
        return None
    assert script is not None
    return (
        script.revision,
        to_tuple(script.down_revision, default=()),
        set(script.branch_labels),
        to_tuple(script.dependencies, default=()),
    )


def as_branchmig(path: Path) -> tuple[Any, ...] | None:
    try:
        found = parse_header(path.read_bytes(), path.name)
    except ScriptError:
        return None
    return (
        found["revision"],
        tuple(found["down"]),
        set(found["labels"]),
        tuple(found["depends"]),
    )


@pytest.fixture
def loaded_as_alembic_does(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], tuple[Any, ...]]:
    """Writes a text as the only script of a real versions folder (a new one each time:
    Alembic keys the modules it loads by file name) and reads it both ways."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    counter = iter(range(10**9))

    def both(text: str) -> tuple[Any, ...]:
        with tempfile.TemporaryDirectory() as tmp:
            versions = Path(tmp, "versions")
            versions.mkdir()
            path = versions / f"m_{next(counter)}_generated.py"
            path.write_text(text)
            return as_alembic(path, ScriptDirectory(tmp)), as_branchmig(path)

    return both


# The fixture makes a new folder for every call: nothing is shared between inputs.
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(text=headers())
def test_headers_read_as_alembic_loads_them(
    text: str, loaded_as_alembic_does: Callable[[str], tuple[Any, ...]]
) -> None:
    alembic_read, ours = loaded_as_alembic_does(text)
    assert ours == alembic_read, text


@pytest.mark.parametrize(
    "text",
    [
        "revision = 'm1'; down_revision = 'm0'\n",
        "revision, down_revision = 'b1', 'a1'\n",
        "revision = 'r'; down_revision = branch_labels = depends_on = None\n",
        "[revision, [down_revision, depends_on]] = 'r', ('pa', ['pb'])\n",
        "revision, *down_revision = 'rx'\n",
        "revision = 'r'\ndown_revision = None\n# revision = 'commented'\n",
        "down_revision = None\n",  # both refuse: no revision
        "revision = 'r'\n",  # both refuse: no down_revision
        "import os\n\ndef upgrade(:\n    pass\n",  # both refuse: does not run
    ],
)
def test_the_forms_users_met(
    text: str, loaded_as_alembic_does: Callable[[str], tuple[Any, ...]]
) -> None:
    alembic_read, ours = loaded_as_alembic_does(text)
    assert ours == alembic_read
