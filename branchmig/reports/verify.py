"""``verify`` rendered: its three questions (a ref's migrations, drift, models) as text,
JSON, and markdown for a pull-request comment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from branchmig.schema import Difference
    from branchmig.verify import DriftResult, ModelsResult, VerifyResult


def verify_json(result: VerifyResult, *, ref: str) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "ref": ref,
        "against": result.against,
        "backend": result.backend,
        "shared": list(result.shared),
        "revisions": [
            {
                "revision": c.revision,
                "path": c.path,
                "upgrade": c.upgrade,
                "downgrade": c.downgrade,
                "upgrade_again": c.upgrade_again,
            }
            for c in result.checks
        ],
        "findings": [
            {
                "revision": f.revision,
                "path": f.path,
                "kind": f.kind,
                "message": f.message,
                "differences": [d.as_dict() for d in f.differences],
            }
            for f in result.findings
        ],
    }


def drift_json(found: DriftResult) -> dict[str, Any]:
    return {
        "ok": found.ok,
        "database": found.database,
        "backend": found.backend,
        "heads": list(found.heads),
        "differences": [d.as_dict() | {"message": describe_drift(d)} for d in found.differences],
    }


def models_json(compared: ModelsResult) -> dict[str, Any]:
    return {
        "ok": compared.ok,
        "heads": list(compared.heads),
        "differences": list(compared.differences),
    }


def describe_drift(diff: Difference) -> str:
    """One difference between what the migrations make (old) and the live database (new)."""
    if diff.change == "added":
        return f"{diff.kind} {diff.where} is in the database, but no migration makes it"
    if diff.change == "removed":
        return f"{diff.kind} {diff.where} {diff.old or ''} is missing from the database"
    return f"{diff.kind} {diff.where} is {diff.new} in the database, {diff.old} by the migrations"


_OUTCOME_MARK = {"ok": "✅", "failed": "❌", "left traces": "⚠️", "not run": "–"}


def verify_report(result: VerifyResult, *, ref: str, markdown: bool) -> str:
    what = "the working tree" if ref == "." else f"'{ref}'"
    count = len(result.checks)
    summary = (
        f"{count} revision{'s' if count != 1 else ''} of {what} against "
        f"'{result.against}' on a scratch {result.backend} database"
    )
    if not markdown:
        if not count:
            return f"Nothing to verify: {what} adds no revision to '{result.against}'."
        lines = [f"Verified {summary} (up, down, up again):"]
        for c in result.checks:
            steps = (c.upgrade, c.downgrade, c.upgrade_again)
            flag = "ok  " if steps == ("ok", "ok", "ok") else "FAIL"
            lines.append(
                f"  {flag} {c.revision}  {c.path}  "
                f"(upgrade {c.upgrade}, downgrade {c.downgrade}, "
                f"upgrade again {c.upgrade_again})"
            )
        lines += [f"branchmig: {f.message}" for f in result.findings]
        return "\n".join(lines)
    verdict = (
        "✅ branchmig verify: every migration goes down and up again"
        if result.ok
        else f"❌ branchmig verify: {len(result.findings)} problem"
        f"{'s' if len(result.findings) != 1 else ''}"
    )
    lines = [f"### {verdict}", "", f"{summary[0].upper()}{summary[1:]}.", ""]
    if count:
        lines += [
            "| revision | file | upgrade | downgrade | upgrade again |",
            "| --- | --- | :-: | :-: | :-: |",
        ]
        lines += [
            f"| `{c.revision}` | `{c.path}` | {_OUTCOME_MARK[c.upgrade]} | "
            f"{_OUTCOME_MARK[c.downgrade]} | {_OUTCOME_MARK[c.upgrade_again]} |"
            for c in result.checks
        ]
        lines.append("")
    lines += [f"- **`{f.revision}`** (`{f.path}`): {f.message}" for f in result.findings]
    return "\n".join(lines).rstrip()


def drift_report(found: DriftResult, *, markdown: bool) -> str:
    heads = ", ".join(found.heads) or "base"
    if found.ok:
        return (
            f"{found.database} matches its migrations at {heads}: no drift."
            if not markdown
            else f"### ✅ branchmig verify --drift: the database matches its migrations at "
            f"`{heads}`"
        )
    if not markdown:
        return "\n".join(
            [
                f"{found.database} differs from its migrations at {heads}:",
                *(f"  {describe_drift(d)}" for d in found.differences),
            ]
        )
    return "\n".join(
        [
            f"### ❌ branchmig verify --drift: {len(found.differences)} "
            f"difference{'s' if len(found.differences) != 1 else ''} from the "
            f"migrations at `{heads}`",
            "",
            *(f"- {describe_drift(d)}" for d in found.differences),
        ]
    )


def models_report(found: ModelsResult) -> str:
    heads = ", ".join(found.heads) or "base"
    if found.ok:
        return f"The models match the migrations at {heads}."
    return "\n".join(
        [
            f"The models differ from what the migrations make at {heads}; a migration should do:",
            *(f"  {d}" for d in found.differences),
        ]
    )
