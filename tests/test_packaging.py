"""The wheel carries every package of the source tree: setuptools builds only the
packages pyproject.toml lists, so a new subpackage left off the list would be missing
from what users install (while every test run from the source tree still passes)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_of_branchmig_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "branchmig").rglob("__init__.py")
    }
    assert on_disk - listed == set()
    mapped = set(config.get("package-dir", {}))
    assert listed - on_disk - mapped == set()
