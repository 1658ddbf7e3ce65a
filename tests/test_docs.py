"""The documentation holds together: every relative link and #anchor resolves, every
``branchmig COMMAND`` it names exists, every option of every command's ``--help`` is in
docs/commands.md under that command, and CI runs the README's test command."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from branchmig.cli import main

TOP = Path(__file__).resolve().parent.parent
DOCS = sorted(
    [
        TOP / "README.md",
        TOP / "CONTRIBUTING.md",
        TOP / "CHANGELOG.md",
        TOP / "benchmarks" / "README.md",
        *(TOP / "docs").glob("*.md"),
    ]
)
COMMANDS_MD = TOP / "docs" / "commands.md"
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SPAN = re.compile(r"`([^`\n]+)`")
SEGMENT = re.compile(r"&&|\|\||[|;\n]|\$\(")
SHARED = {"config", "verbose", "quiet", "help"}  # documented once, for every command


def prose(text: str) -> str:
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in prose(path.read_text()).splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            base = slug(m.group(1))
            name, n = base, 0
            while name in found:
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def commands(group: click.Group, path: str = "branchmig") -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # the lazily loaded ones too
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        yield f"{path} {name}", cmd
        if isinstance(cmd, click.Group):
            yield from commands(cmd, f"{path} {name}")


def section(text: str, heading: str) -> str:
    """The text under ``## heading`` up to the next ``## ``."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : None if end < 0 else end]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(TOP)))
def test_every_relative_link_and_anchor_resolves(doc: Path) -> None:
    broken = []
    for target in LINK.findall(prose(doc.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(f"{target}: no {path.relative_to(TOP)}")
        elif anchor and anchor not in anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.relative_to(TOP)}")
    assert not broken, f"{doc.relative_to(TOP)}: {broken}"


def named_commands(chunk: str) -> Iterator[list[str]]:
    """Each ``branchmig`` command line in a piece of code: its words after the program
    (``flask [--app X] branchmig`` too), options left out."""
    for segment in SEGMENT.split(chunk):
        words = segment.split()
        while words and words[0] in ("$", "{", "("):
            words = words[1:]
        if words[:1] == ["flask"] and "branchmig" in words:
            words = words[words.index("branchmig") :]
        if words[:1] != ["branchmig"]:
            continue
        rest, skip = [], False
        for word in words[1:]:
            if skip or word.startswith("-"):
                skip = word in ("-c", "--config")
                continue
            rest.append(word)
        yield rest


def test_every_command_the_docs_name_exists() -> None:
    known = {name for name, _ in commands(main)}
    groups = {name for name, cmd in commands(main) if isinstance(cmd, click.Group)}
    unknown = set()
    for doc in DOCS:
        text = doc.read_text()
        code = [m.group(0) for m in FENCE.finditer(text)]
        for chunk in [*SPAN.findall(prose(text)), *code]:
            for words in named_commands(chunk):
                if not words or not re.fullmatch(r"[a-z][a-z-]*", words[0]):
                    continue  # `branchmig --version`, `branchmig COMMAND --help`
                name = f"branchmig {words[0]}"
                if name in groups and len(words) > 1 and re.fullmatch(r"[a-z]+", words[1]):
                    name = f"{name} {words[1]}"
                if name not in known:
                    unknown.add(f"{doc.relative_to(TOP)}: {' '.join(words)!r}")
    assert not unknown, sorted(unknown)


def test_every_commands_options_are_in_its_section_of_commands_md() -> None:
    text = COMMANDS_MD.read_text()
    missing = []
    for name, cmd in commands(main):
        if isinstance(cmd, click.Group):
            continue
        heading = f"`{name}`" if name != "branchmig uninstall" else "`branchmig install`"
        try:
            part = section(text, heading)
        except ValueError:
            missing.append(f"no section '## {heading}'")
            continue
        for param in cmd.params:
            if param.name in SHARED or not isinstance(param, click.Option) or param.hidden:
                continue
            missing += [
                f"{name} {o}" for o in (*param.opts, *param.secondary_opts) if o not in part
            ]
    shared = section(text, "Options every command takes")
    for param in main.params:
        missing += [
            f"branchmig {o}" for o in (*param.opts, *param.secondary_opts) if o not in shared
        ]
    assert not missing, missing


def test_ci_runs_the_readmes_test_command() -> None:
    readme = (TOP / "README.md").read_text()
    command = re.search(r"python -m pytest[^\n`]*", readme)
    assert command is not None
    ci = (TOP / ".ci" / "run").read_text().splitlines()
    assert command.group(0).strip() in [line.strip() for line in ci], command.group(0)
