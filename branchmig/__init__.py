"""branchmig: the database follows every git checkout of an Alembic project."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    """``branchmig.__version__``: the installed distribution's, so that it never differs
    from the package metadata (read only when asked: the hook imports this package)."""
    if name == "__version__":
        from importlib.metadata import version

        return version("branchmig")
    raise AttributeError(f"module 'branchmig' has no attribute {name!r}")
