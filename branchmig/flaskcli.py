"""``flask branchmig ...``: the ``branchmig`` commands under Flask's CLI, run with the app
``flask`` loaded (``--app``, FLASK_APP, .flaskenv, app.py) instead of one found again.

Flask finds the group through the ``flask.commands`` entry point. It shares the
``branchmig`` group's options, commands and error rendering; only its callback differs,
handing the app over first. Flask imports this module on every ``flask`` command, so it
imports only what ``branchmig.cli`` does (no SQLAlchemy or Alembic).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from flask.cli import ScriptInfo

from branchmig.cli import main
from branchmig.flaskapp import load_flask_app, use_flask_app


def _with_flask_app(**options: Any) -> None:
    ctx = click.get_current_context()
    info = ctx.ensure_object(ScriptInfo)
    use_flask_app(load_flask_app(info.load_app, app_path=info.app_import_path, root=Path.cwd()))
    assert main.callback is not None
    main.callback(**options)


branchmig = type(main)(
    name="branchmig",
    callback=_with_flask_app,
    params=main.params,
    commands=main.commands,
    lazy=main.lazy,
    load=main.load,
    help=main.help,
    short_help="Git-aware migrations: the database follows every checkout.",
    context_settings=main.context_settings,
)
