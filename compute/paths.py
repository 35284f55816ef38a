"""Server paths a browser may name (a model folder, an SAE folder, a training text file), confined to the
operator's roots when the app serves a group (Settings.path_roots); the CLI and the local tool take any path.

A path is resolved (symlinks followed, `..` collapsed) before it is compared with the roots, so neither `../`
nor a symlink placed inside a root leads out. The refusal reads the same whether the path exists or not: a
browser user cannot probe the server's disk with it.
"""
from __future__ import annotations

from pathlib import Path

from .errors import BadInput
from .settings import Settings


def confined(settings: Settings, raw: str, what: str) -> Path:
    """`raw` as a Path, or BadInput when roots are set and it resolves outside all of them."""
    path = Path(raw).expanduser()
    if settings.path_roots is None:
        return path
    resolved = path.resolve()
    for root in settings.path_roots:
        if resolved.is_relative_to(root.expanduser().resolve()):
            return resolved
    raise BadInput(refusal(settings, what))


def refusal(settings: Settings, what: str) -> str:
    roots = ", ".join(str(r) for r in settings.path_roots or ())
    return (f"on this server, {what} are read only from the operator's folders ({roots}); ask an operator to put "
            f"it there (WORKBENCH_MODEL_ROOTS lists them)")


def is_confined(settings: Settings) -> bool:
    return settings.path_roots is not None
