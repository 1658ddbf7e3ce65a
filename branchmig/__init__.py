"""branchmig: the database follows every git checkout of an Alembic project."""

__version__ = "0.1.0"
