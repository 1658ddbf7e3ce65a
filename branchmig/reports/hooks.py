"""``install`` and ``uninstall`` rendered: what was written, kept and put back."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from branchmig.hooks import InstallResult, UninstallResult


def installed_text(result: InstallResult) -> list[str]:
    return [
        *(f"installed {path}" for path in result.installed),
        *(
            f"kept your {path.name.removesuffix('.branchmig-chained')} hook; it runs first"
            for path in result.chained
        ),
        f"watching {', '.join(result.watch)} (Python: {result.python})",
    ]


def uninstalled_text(result: UninstallResult) -> list[str]:
    return [
        *(f"removed {path}" for path in result.removed),
        *(f"restored {path}" for path in result.restored),
        *([] if result.removed else ["no branchmig hooks were installed"]),
    ]
