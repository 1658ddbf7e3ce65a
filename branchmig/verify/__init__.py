"""Prove a branch's own migrations on a scratch database, and find drift in the live one.

``verify`` makes a scratch database of the project's own backend (a temporary SQLite file,
or a new database on the PostgreSQL or MariaDB/MySQL server of the project's URL), upgrades
it to the revisions REF shares with BASE, then runs each revision REF adds up, down and up
again, comparing the schema before its upgrade with the schema after its downgrade.
``drift`` builds a scratch database from empty to the live database's heads and compares
the two; ``models`` compares one built to the working tree's heads with env.py's models.
The live database is never written, nor the checkout: migrations run through the
project's own env.py, pointed at the scratch database, and the scratch database is
dropped afterwards, whatever happens.

The package's modules, each below the next: ``results`` (the values and their messages),
``targets`` (which databases env.py migrates, which backend), ``scratch`` (the scratch
databases, made and dropped there), ``reading`` (schema inspection; the comparison itself
is ``schema.compare``), ``rounds`` (the revisions run on them) and ``commands``.
"""

from __future__ import annotations

from branchmig.verify.commands import default_base, drift, models, verify
from branchmig.verify.reading import Reflected, inspect_connection, inspect_schema
from branchmig.verify.results import (
    DriftResult,
    Finding,
    ModelsResult,
    RevisionCheck,
    VerifyResult,
    describe_model_diff,
    describe_trace,
)
from branchmig.verify.scratch import (
    SCRATCH_PREFIX,
    Scratch,
    dead_scratches,
    drop_dead_scratches,
    drop_dead_scratches_of,
    scratch_database,
    scratch_databases,
    scratch_is_dead,
    scratch_name,
)

__all__ = [
    "SCRATCH_PREFIX",
    "DriftResult",
    "Finding",
    "ModelsResult",
    "Reflected",
    "RevisionCheck",
    "Scratch",
    "VerifyResult",
    "dead_scratches",
    "default_base",
    "describe_model_diff",
    "describe_trace",
    "drift",
    "drop_dead_scratches",
    "drop_dead_scratches_of",
    "inspect_connection",
    "inspect_schema",
    "models",
    "scratch_database",
    "scratch_databases",
    "scratch_is_dead",
    "scratch_name",
    "verify",
]
