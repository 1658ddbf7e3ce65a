"""The move first on a copy of the live database: the live one is touched only when the
plan ran there."""

from __future__ import annotations

import contextlib

from branchmig.dbread import read_database
from branchmig.errors import ConfigError, MoveFailed, StepFailed
from branchmig.flaskapp import flask_engines_at
from branchmig.move.gather import Decided, token
from branchmig.move.request import MoveRequest
from branchmig.move.rollback import name_the_fix
from branchmig.move.steps import run_plan
from branchmig.session import Session
from branchmig.urls import copy_url, same_database


def rehearse(s: Session, req: MoveRequest, d: Decided) -> None:
    """Run the move's plan on a copy of the live database first (a SQLite file copy, a
    PostgreSQL template copy, a MariaDB copy: the snapshot backend's own save), through
    env.py pointed at it; the live database is touched only when that succeeded."""
    backend = s.backend()
    key = f"rehearsal-{token()}"
    s.progress(f"branchmig: rehearsing the move on a copy of {s.masked}")
    s.env.dispose_engines()
    stored = backend.save(key)
    config = s.env.config
    original = config.get_main_option("sqlalchemy.url")
    pointed = contextlib.ExitStack()
    try:
        # Each database's copy: a multidb snapshot's members are in the databases' order.
        members = [b for _, b in getattr(backend, "members", ())] or [backend]
        locations = stored.location.split("; ") if len(members) > 1 else [stored.location]
        copies = {
            db.name: copy_url(db.url, member.name, location)
            for db, member, location in zip(s.db.databases, members, locations, strict=True)
        }
        first_copy = copies[s.db.databases[0].name]
        if s.env.flask_app is not None:  # the app's engines, made anew on the copies
            pointed.enter_context(flask_engines_at(s.env, copies))
        else:
            config.set_main_option("sqlalchemy.url", first_copy.replace("%", "%%"))
        reached = read_database(s.env).urls
        if not all(any(same_database(r, c) for c in copies.values()) for _, r in reached):
            raise ConfigError(
                "env.py does not connect to the sqlalchemy.url branchmig sets, so the move "
                "cannot be rehearsed on a copy; make env.py use config.get_main_option("
                "'sqlalchemy.url'), or run without --rehearse"
            )
        try:
            run_plan(
                s,
                d.plan,
                d.source,
                req.target,
                target_from_git=req.checkout is not None,
                quiet_steps=True,
                on_live=False,
                old_commits=(req.previous, d.owner.commit),
                target_commit=req.target_commit,
            )
        except StepFailed as err:
            raise MoveFailed(
                err, restored=True, rehearsal=True, fix=name_the_fix(s, d, req.target, err)
            ) from err
    finally:
        pointed.close()
        if original is not None:
            config.set_main_option("sqlalchemy.url", original.replace("%", "%%"))
        s.env.dispose_engines()
        backend.drop(key)
