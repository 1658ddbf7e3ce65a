"""Reports for a pull-request comment (``--format markdown``) and for people, made from
the results of ``plan``, ``check`` and ``verify``. Pure: text from results."""

from __future__ import annotations

from typing import Any


def _md_ref(ref: str) -> str:
    return "the working tree" if ref in ("WORKTREE", ".") else f"`{ref}`"


def _md_warnings(warnings: tuple[str, ...] | list[str]) -> list[str]:
    return ["", "**Warnings**", "", *(f"- {w}" for w in warnings)] if warnings else []


def plan_markdown(p: Any, *, source: str, target: str, warnings: tuple[str, ...]) -> str:
    """The plan as a pull-request comment: a heading, one table row per step in
    execution order, the steps that lose data flagged (downgrades and upgrades alike),
    then the warnings."""
    move = f"{_md_ref(source)} → {_md_ref(target)}"
    if p.is_noop:
        head = f"### ✅ branchmig plan: {move}: nothing to do"
    else:
        count = (
            f"{len(p.downgrade)} downgrade{'s' if len(p.downgrade) != 1 else ''}, "
            f"{len(p.upgrade)} upgrade{'s' if len(p.upgrade) != 1 else ''}"
        )
        losing = _losing_steps(p)
        head = (
            f"### ⚠️ branchmig plan: {move}: {count}; {losing}"
            if losing
            else f"### branchmig plan: {move}: {count}"
        )
    lines = [
        head,
        "",
        f"Common revision{'s' if len(p.common) > 1 else ''}: "
        f"{', '.join(f'`{c}`' for c in p.common) or 'base (none)'}.",
    ]
    if not p.is_noop:
        lines += ["", "| # | step | revision | loses data |", "| -: | --- | --- | --- |"]
        steps = [("downgrade", r) for r in p.downgrade] + [("upgrade", r) for r in p.upgrade]
        for n, (step, rev) in enumerate(steps, 1):
            lost = "<br>".join(
                f"⚠️ `{d.operation}` {d.target}"
                for d in p.destructive
                if d.revision == rev and d.direction == step
            )
            redone = " (script changed: redone)" if rev in p.changed else ""
            lines.append(f"| {n} | {step} | `{rev}`{redone} | {lost} |")
    return "\n".join(lines + _md_warnings(warnings))


def _losing_steps(p: Any) -> str:
    """ "1 downgrade loses data", "2 downgrades and 1 upgrade lose data", or ""."""
    parts, total = [], 0
    for direction in ("downgrade", "upgrade"):
        n = len({d.revision for d in p.destructive if d.direction == direction})
        if n:
            parts.append(f"{n} {direction}{'s' if n != 1 else ''}")
            total += n
    if not parts:
        return ""
    return f"{' and '.join(parts)} lose{'s' if total == 1 else ''} data"


def check_markdown(result: Any) -> str:
    """The check as a pull-request comment: the verdict, the heads, the warnings."""
    verdict = (
        f"### ✅ branchmig check: {result.message}"
        if result.ok
        else "### ❌ branchmig check: "
        + (
            f"merging {_md_ref(result.against)} would leave {len(result.merged_heads)} heads"
            if result.merged_heads
            else f"{len(result.heads)} heads"
        )
    )
    lines = [verdict, ""]
    if not result.ok:
        lines += [result.message, ""]
    lines += [f"- Heads in the working tree: {', '.join(f'`{h}`' for h in result.heads) or 'none'}"]
    if result.against is not None and result.merged_heads:
        lines.append(
            f"- Heads after merging {_md_ref(result.against)}: "
            f"{', '.join(f'`{h}`' for h in result.merged_heads)}"
        )
    lines.append(f"- Heads expected: {result.expected_heads}")
    return "\n".join(lines + _md_warnings(result.warnings))


_OUTCOME_MARK = {"ok": "✅", "failed": "❌", "left traces": "⚠️", "not run": "–"}


def verify_report(result: Any, *, ref: str, markdown: bool) -> str:
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


def drift_report(found: Any, *, markdown: bool) -> str:
    from branchmig.verify import describe_drift

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


def models_report(found: Any) -> str:
    heads = ", ".join(found.heads) or "base"
    if found.ok:
        return f"The models match the migrations at {heads}."
    return "\n".join(
        [
            f"The models differ from what the migrations make at {heads}; a migration should do:",
            *(f"  {d}" for d in found.differences),
        ]
    )
