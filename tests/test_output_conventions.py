"""What people read, found by trying branchmig (issue 13, item 8): database names shown
as they are named, the refs of an unknown revision sorted and capped, ``status`` never
sending the user to ``status``, and one unit for sizes."""

from __future__ import annotations

import pytest
from e2e_projects import F1, Project

from branchmig.snapshots.base import format_size
from branchmig.state import DatabaseId


def test_a_database_name_with_spaces_quotes_and_accents_reads_as_named() -> None:
    # As env.py's engine renders it: URL-encoded.
    url = "postgresql+psycopg://app:s3cret@db:5432/adv_%20my%20%22db%22%20%C3%BC"
    assert DatabaseId.of(url).masked == 'postgresql+psycopg://app:***@db:5432/adv_ my "db" ü'


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (1024, "1.0 kB"),
        (1_500_000, "1.5 MB"),
        (3 * 10**9, "3.0 GB"),
    ],
)
def test_sizes_have_one_unit_everywhere(size: int, shown: str) -> None:
    assert format_size(size) == shown


def test_an_unknown_revisions_refs_are_sorted_and_capped(
    db_at_feature1_head_with_emails: Project,
) -> None:
    p = db_at_feature1_head_with_emails
    for name in ("zeta", "alpha", "mu", "beta", "omega", "delta"):
        p.git("branch", name, "feature1")  # six more refs that hold F1
    p.git("checkout", "-q", "main")  # no hooks installed: the database stays at F1
    out = p.ok("status").stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("unknown:"))
    assert line == (
        f"unknown:    {F1} (on alpha, beta, delta, feature1, mu and 2 more; run: branchmig sync)"
    ), out
    assert "branchmig status" not in out  # the user is reading it already
    found = p.status()["unknown_found_in"][F1]
    assert sorted(found) == ["alpha", "beta", "delta", "feature1", "mu", "omega", "zeta"]
