"""``plan`` and ``check`` rendered: text, JSON, and markdown for a pull-request comment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from branchmig.analysis import CheckResult, PlanResult
    from branchmig.plan import Plan


def plan_text(p: Plan, *, source: str, target: str) -> str:
    lines = [f"From {source} to {target}:"]
    lines.append(f"  common:    {', '.join(p.common) or '(base)'}")
    if p.is_noop:
        lines.append("  nothing to do")
        return "\n".join(lines)
    lines.append(f"  downgrade: {' -> '.join(p.downgrade) or '-'}")
    lines.append(f"  upgrade:   {' -> '.join(p.upgrade) or '-'}")
    if p.changed:
        lines.append(f"  changed scripts (redone): {', '.join(p.changed)}")
    for d in p.destructive:
        lines.append(f"  loses data: {d.describe()}")
    return "\n".join(lines)


def plan_json(result: PlanResult) -> dict[str, Any]:
    p = result.plan
    return {
        "from": result.source,
        "to": result.target,
        "common": list(p.common),
        "downgrade": list(p.downgrade),
        "upgrade": list(p.upgrade),
        "changed": list(p.changed),
        "destructive": [
            {
                "revision": d.revision,
                "operation": d.operation,
                "target": d.target,
                "line": d.line,
                "direction": d.direction,
            }
            for d in p.destructive
        ],
        "batch_needed": [
            {
                "revision": d.revision,
                "operation": d.operation,
                "target": d.target,
                "line": d.line,
                "reason": getattr(d, "reason", ""),
            }
            for d in p.batch_needed
        ],
        "warnings": list(result.warnings),
    }


def check_text(result: CheckResult, *, markdown: bool) -> tuple[list[str], list[str]]:
    """The lines for standard output, and for standard error: a failed check's message."""
    failed = [] if result.ok else [f"branchmig: {result.message}"]
    if markdown:
        return [check_markdown(result)], failed
    return ([result.message] if result.ok else []), failed


def check_json(result: CheckResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "heads": list(result.heads),
        "against": result.against,
        "merged_heads": list(result.merged_heads),
        "expected_heads": result.expected_heads,
        "message": result.message,
        "warnings": list(result.warnings),
    }


def _md_ref(ref: str | None) -> str:
    return "the working tree" if ref in ("WORKTREE", ".") else f"`{ref}`"


def _md_warnings(warnings: tuple[str, ...] | list[str]) -> list[str]:
    return ["", "**Warnings**", "", *(f"- {w}" for w in warnings)] if warnings else []


def plan_markdown(p: Plan, *, source: str, target: str, warnings: tuple[str, ...]) -> str:
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


def _losing_steps(p: Plan) -> str:
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


def check_markdown(result: CheckResult) -> str:
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
