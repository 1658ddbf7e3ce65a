"""The live databases env.py migrates (a Flask app's engines, else ``sqlalchemy.url``),
their backends as verify supports them, and what env.py must do to be pointed at
scratch databases."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from branchmig.errors import ConfigError
from branchmig.flaskapp import flask_engine_urls
from branchmig.urls import backend_of, dialect_named, mask_url

# How env.py is pointed at scratch databases, and what it must do for that to work: plain
# Alembic's by sqlalchemy.url, a Flask app's by its Flask-SQLAlchemy engines.
POINTED = {
    False: "sqlalchemy.url branchmig set, so it cannot be pointed at a scratch database; "
    "make env.py use config.get_main_option('sqlalchemy.url') when it is set, then run: "
    "branchmig verify",
    True: "app's engines branchmig made on scratch databases, so it cannot be pointed at "
    "them; make env.py take its engines from Flask-SQLAlchemy's db.engines (as the env.py "
    "of flask db init does), then run: branchmig verify",
}


def live_urls(env: Any) -> dict[str, str]:
    """The live databases by name: a Flask app's engines (read, not connected), else
    ``sqlalchemy.url``."""
    if env.flask_app is not None:
        return flask_engine_urls(env)
    return {"": configured_url(env)}


def backends_of(urls: Iterable[str]) -> str:
    return "+".join(sorted({supported_backend(url) for url in urls}))


def configured_url(env: Any) -> str:
    url = env.config.get_main_option("sqlalchemy.url")
    if not url:
        raise ConfigError(
            "The Alembic configuration sets no sqlalchemy.url, so branchmig cannot tell "
            "which database server to make a scratch database on; set sqlalchemy.url in "
            "alembic.ini (env.py must use it), then run: branchmig verify"
        )
    return str(url)


def supported_backend(url: str) -> str:
    backend = backend_of(url)
    if backend is None:
        raise ConfigError(
            f"branchmig verify supports sqlite, postgresql and mysql/mariadb "
            f"databases, not {dialect_named(url)!r} ({mask_url(url)})"
        )
    return backend
