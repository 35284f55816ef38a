"""The analysis kinds: `register` records a spec class and its run function; `spec_from_dict` reads a
stored or shared spec back.

Every module of this package is imported once, on the first look-up, so that each registers its own
kinds: a new analysis is a new module here, named nowhere else. Extra modules (plugins, or test doubles
for the job machinery) can be named, comma-separated, in WORKBENCH_EXTRA_ANALYSES; worker processes
import them too.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import threading
from dataclasses import dataclass
from typing import Callable

from compute.errors import BadInput

from .base import Result, Spec


@dataclass(frozen=True)
class Analysis:
    spec_cls: type[Spec]
    run: Callable[..., Result]
    long: bool  # runs as a background job by default


ANALYSES: dict[str, Analysis] = {}
_loaded = False
_loading = threading.RLock()  # re-entrant: a module imported here may look a kind up while it loads


def register(spec_cls: type[Spec], long: bool = False):
    def deco(fn: Callable[..., Result]) -> Callable[..., Result]:
        if not spec_cls.KIND:
            raise ValueError("spec class needs a KIND")
        ANALYSES[spec_cls.KIND] = Analysis(spec_cls, fn, long)
        return fn
    return deco


def load_all() -> dict[str, Analysis]:
    """Import every analysis module (and the extra ones) so that all kinds are registered. Browser sessions
    run in threads of one server: the first look-ups can come at once, and none may see a half-filled
    registry (five sessions opening share links together once read "unknown analysis kind"), so the
    imports happen under a lock and `_loaded` turns true only after them."""
    global _loaded
    if not _loaded:
        with _loading:
            if not _loaded:
                package = __name__.rsplit(".", 1)[0]
                for mod in pkgutil.iter_modules(importlib.import_module(package).__path__):
                    if mod.name != "worker":  # the job worker's entry point registers nothing
                        importlib.import_module(f"{package}.{mod.name}")
                for name in filter(None, os.environ.get("WORKBENCH_EXTRA_ANALYSES", "").split(",")):
                    importlib.import_module(name.strip())
                _loaded = True
    return ANALYSES


def analysis_of(kind: str) -> Analysis:
    analyses = load_all()
    if kind not in analyses:
        raise BadInput(f"unknown analysis kind '{kind}'; known: {', '.join(sorted(analyses))}")
    return analyses[kind]


def spec_from_dict(data: dict, stored: bool = False) -> Spec:
    """`stored`: read back from the store (see `added` in base.py), not written by a user today."""
    if not isinstance(data, dict) or "kind" not in data:
        raise BadInput("a spec is a JSON object with a 'kind'")
    return analysis_of(data["kind"]).spec_cls.from_dict(data, stored=stored)
