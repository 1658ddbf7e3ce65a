"""``branchmig heads`` against ``alembic heads`` on a 5,000-revision history.

Builds (in a temp dir) a real ``alembic init`` project in a git repository whose history
has 5,000 scripts with typed headers, a few branches and merges, commits it, then times
the real commands as a user runs them (new processes):

    python benchmarks/bench_heads.py [--revisions N] [--keep]

Targets: warm ≥ 20× and cold ≥ 5× faster than ``alembic heads``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import installed_like_env

BIN = Path(sys.executable).parent
AS_IS = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
ENV = {
    **{k: v for k, v in installed_like_env().items() if not k.startswith("GIT_")},
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}

TEMPLATE = '''"""{message}

Revision ID: {rev}
Revises: {down_text}
Create Date: 2024-01-01 12:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = {rev!r}
down_revision: Union[str, Sequence[str], None] = {down!r}
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "table_{n}",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("table_{n}", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_table_{n}_name"), ["name"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("table_{n}", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_table_{n}_name"))

    op.drop_table("table_{n}")
'''


def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        args, cwd=cwd, env=env or ENV, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr}")
    return elapsed


def build(root: Path, count: int) -> list[str]:
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], env=ENV, check=True)
    subprocess.run(
        [str(BIN / "alembic"), "init", "alembic"],
        cwd=root,
        env=ENV,
        check=True,
        capture_output=True,
    )
    versions = root / "alembic" / "versions"
    down: str | tuple[str, ...] | None = None
    n = 0
    while n < count:
        # Every 250 revisions: two short branches and a merge revision.
        if n and n % 250 == 0 and n + 6 < count:
            tips = []
            for branch in "ab":
                prev = down
                for _ in range(2):
                    rev = f"{n:08x}{branch}bc1"
                    write(versions, rev, prev, n)
                    prev, n = rev, n + 1
                tips.append(prev)
            rev = f"{n:08x}merge"
            write(versions, rev, tuple(tips), n, message="merge heads")
            down, n = rev, n + 1
            continue
        rev = f"{n:012x}"
        write(versions, rev, down, n)
        down, n = rev, n + 1
    subprocess.run(["git", "add", "-A"], cwd=root, env=ENV, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "history"], cwd=root, env=ENV, check=True)
    return [str(down)]


def write(
    versions: Path, rev: str, down: str | tuple[str, ...] | None, n: int, message: str = ""
) -> None:
    down_text = ", ".join(down) if isinstance(down, tuple) else str(down)
    text = TEMPLATE.format(
        message=message or f"add table {n}", rev=rev, down=down, down_text=down_text, n=n
    )
    (versions / f"{rev}_step_{n}.py").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", type=int, default=5000)
    parser.add_argument("--keep", action="store_true", help="keep the generated repository")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="branchmig-bench-"))
    root = tmp / "project"
    try:
        build(root, args.revisions)
        cache = root / ".git" / "branchmig"
        # Two baselines: Alembic as this machine's environment runs it (PYTHONDONTWRITEBYTECODE
        # may be set: every script recompiled on every run), and with its bytecode cached,
        # as on a machine that lets Python write __pycache__.
        as_is = statistics.median(
            run(root, str(BIN / "alembic"), "heads", env=AS_IS) for _ in range(3)
        )
        run(root, str(BIN / "alembic"), "heads")  # untimed: lets Alembic write its bytecode
        alembic = statistics.median(run(root, str(BIN / "alembic"), "heads") for _ in range(3))
        rows = [("alembic heads, bytecode cached", alembic, None)]
        if AS_IS.get("PYTHONDONTWRITEBYTECODE"):
            rows.append(("alembic heads, PYTHONDONTWRITEBYTECODE set here", as_is, None))
        for label, ref in (("working tree", "."), ("HEAD", "HEAD")):
            cold = []
            for _ in range(3):
                shutil.rmtree(cache, ignore_errors=True)
                cold.append(run(root, str(BIN / "branchmig"), "heads", ref))
            warm = [run(root, str(BIN / "branchmig"), "heads", ref) for _ in range(5)]
            rows.append((f"branchmig heads {ref} ({label}), cold", statistics.median(cold), 5))
            rows.append((f"branchmig heads {ref} ({label}), warm", statistics.median(warm), 20))
        print(f"{args.revisions} revisions, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        print(
            f"{'command':<48} {'median s':>9} {'× faster':>9} {'target':>8}  "
            f"{'× vs as-is' if AS_IS.get('PYTHONDONTWRITEBYTECODE') else ''}"
        )
        for name, seconds, target in rows:
            if target is None:
                print(f"{name:<48} {seconds:>9.3f}")
                continue
            ratio = alembic / seconds
            verdict = "ok" if ratio >= target else "MISSED"
            extra = f"{as_is / seconds:>9.1f}×" if AS_IS.get("PYTHONDONTWRITEBYTECODE") else ""
            print(
                f"{name:<48} {seconds:>9.3f} {ratio:>8.1f}× {f'≥{target}×':>8}  "
                f"{verdict:<6} {extra}"
            )
        print(
            "× faster: against Alembic with its bytecode cached; × vs as-is: against "
            "Alembic in this machine's environment"
        )
        if args.keep:
            print(f"repository kept in {root}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
