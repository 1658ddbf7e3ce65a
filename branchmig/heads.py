"""``heads``: the head revisions of a ref's graph, remembered by the scripts' signature.
A shell prompt asks at every prompt (``entry`` answers a remembered one before click
loads), so this module stays apart from the analyzer and what it imports."""

from __future__ import annotations

import json
from dataclasses import dataclass

from branchmig.cache import heads_memo
from branchmig.workspace import WORKTREE, Workspace


@dataclass(frozen=True)
class HeadsResult:
    ref: str
    heads: tuple[str, ...]
    paths: tuple[str, ...]
    warnings: tuple[str, ...]


def heads(ws: Workspace, *, ref: str = WORKTREE) -> HeadsResult:
    """The heads of the graph at ``ref``; a broken graph is an error.

    The answer is remembered by the scripts' signature (tree ids at a commit, file stats
    in the working tree), so asking again about unchanged scripts reads none of them:
    that is what lets the hook and shell prompts call it freely."""
    signature = ws.signature(ref)
    known = remembered_heads(ws, ref=ref, signature=signature)
    if known is not None:
        return known
    summaries = heads_memo(ws.repo.common_dir)
    scripts, graph = ws.graph_at(ref, signature=signature)
    graph.check()
    result = HeadsResult(
        ref=ref or "WORKTREE",
        heads=graph.heads,
        paths=tuple(graph.revisions[h].path for h in graph.heads),
        warnings=scripts.warnings,
    )
    if ws.still_signs(signature):
        summaries.put(
            signature,
            {
                "heads": list(result.heads),
                "paths": list(result.paths),
                "warnings": list(result.warnings),
            },
        )
    return result


def remembered_heads(
    ws: Workspace, *, ref: str = WORKTREE, signature: str | None = None
) -> HeadsResult | None:
    """The answer ``heads`` gave last for these very scripts (the same signature); None
    when there is none."""
    signature = signature or ws.signature(ref)
    known = heads_memo(ws.repo.common_dir).get(signature)
    if known is None:
        return None
    return HeadsResult(
        ref=ref or "WORKTREE",
        heads=tuple(known["heads"]),
        paths=tuple(known["paths"]),
        warnings=tuple(known["warnings"]),
    )


def heads_output(result: HeadsResult, *, as_json: bool) -> tuple[str, str]:
    """What ``branchmig heads`` prints: (standard output, standard error)."""
    err = "".join(f"warning: {line}\n" for line in result.warnings)
    if as_json:
        return json.dumps({"ref": result.ref, "heads": list(result.heads)}, indent=2) + "\n", err
    lines = [f"{h} (head)  {p}" for h, p in zip(result.heads, result.paths, strict=True)]
    if not result.heads:
        where = "the working tree" if result.ref == "WORKTREE" else repr(result.ref)
        lines.append(f"no revisions at {where}")
    return "".join(f"{line}\n" for line in lines), err
