"""What the runner does to the process it runs in."""

from __future__ import annotations

import subprocess
import sys


def test_loading_alembic_on_a_thread_leaves_every_module_importable() -> None:
    code = (
        "from branchmig import alembicenv\n"
        "alembicenv.start_loading_alembic()\n"
        "assert alembicenv._loading is not None\n"
        "alembicenv._loading.join()\n"
        "import sys, alembic.context, mako.exceptions\n"
        "assert 'alembic.runtime.environment' in sys.modules\n"
        "import mako.ext.pygmentplugin  # skipped while Alembic loaded, importable after\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "ok", done.stderr
