"""``branchmig demo``: the README's first command, on a machine with nothing set up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BRANCHMIG = str(Path(sys.executable).parent / "branchmig")


def test_demo_switches_back_and_forth_and_keeps_the_data(tmp_path: Path) -> None:
    # No git identity, no config: the demo must bring what it needs.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "FLASK_"))}
    env["HOME"] = str(tmp_path)
    folder = tmp_path / "demo"
    proc = subprocess.run(
        [BRANCHMIG, "demo", "--dir", str(folder)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "revert f1email (loses users.email); apply f2posts" in proc.stdout
    assert "restored the snapshot of 'feature1'" in proc.stdout
    assert "The e-mail address survived the round trip" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert (folder / ".git" / "hooks" / "post-checkout").is_file()
