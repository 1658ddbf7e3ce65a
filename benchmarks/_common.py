"""What the benchmark scripts share."""

from __future__ import annotations

import compileall
import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import branchmig


def installed_like_env() -> dict[str, str]:
    """The environment for timed commands, with branchmig's bytecode compiled as
    ``pip install`` leaves it. Some machines (this project's CI among them) set
    PYTHONDONTWRITEBYTECODE, so an editable checkout would recompile every module on
    every run: 40 ms that no installed copy pays, and that plain Alembic (compiled by pip)
    does not pay either."""
    compileall.compile_dir(str(Path(branchmig.__file__).parent), quiet=1)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def installed_copy(tmp: Path) -> tuple[Path, dict[str, str]]:
    """A virtual environment in ``tmp`` holding branchmig as users get it (its wheel,
    installed by pip, bytecode compiled), and the environment to time commands in: its
    ``bin`` first on PATH. An editable install, as a checkout has, costs every process
    ~15 ms of its import hook at startup, which no installed copy pays; plain Alembic runs
    from the same environment, so neither side pays it. The dependencies (Alembic,
    SQLAlchemy) are this interpreter's, named by a ``.pth`` line: both sides run the same
    Alembic."""
    root = Path(__file__).resolve().parent.parent
    dist, env_dir = tmp / "dist", tmp / "venv"
    had_build = (root / "build").exists()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(root)],
        check=True,
    )
    if not had_build:
        shutil.rmtree(root / "build", ignore_errors=True)
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "bench_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    wheel = next(dist.glob("branchmig-*.whl"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            str(wheel),
        ],
        check=True,
    )
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env_dir / "bin", env
