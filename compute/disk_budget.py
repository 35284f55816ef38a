"""A disk budget for what the workbench can recompute: the result cache and the activation cache.

Each entry (a result folder, an activation set) carries a `LAST_USED` marker, touched whenever it is read.
When the two caches together pass the budget (WORKBENCH_DISK_BUDGET_GB), the least recently used entries go
first, until they fit. What is never evicted: fitted artifacts (trained SAEs, EK-FAC factors, LIB bases: the
fit folders a share link's analysis depends on and that would cost a training run), the store (the specs behind
share links: a link to an evicted result still opens, by recomputing it), and anything used within the last
`keep_recent_s` seconds (a running job's activations, a result being shown). Half-written `.tmp-*` folders are
the sweep's, not the budget's.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

MARKER = "LAST_USED"


def touch(entry: Path) -> None:
    """Record a read of a cache entry (best effort: a read-only or vanished entry is no error)."""
    try:
        (entry / MARKER).touch()
    except OSError:
        pass


def _size(entry: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(entry):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                continue
    return total


def _last_used(entry: Path) -> float:
    try:
        return (entry / MARKER).stat().st_mtime
    except OSError:
        try:
            return entry.stat().st_mtime
        except OSError:
            return 0.0


def entries(roots: list[Path]) -> list[tuple[Path, int, float]]:
    """(entry, bytes, last used) of every finished entry under the cache roots."""
    out = []
    for root in roots:
        if not root.is_dir():
            continue
        for entry in root.iterdir():
            if entry.is_dir() and not entry.name.startswith("."):
                out.append((entry, _size(entry), _last_used(entry)))
    return out


def enforce(roots: list[Path], budget_bytes: int, keep_recent_s: float = 600.0) -> list[Path]:
    """Evict least-recently-used entries until the caches fit the budget; returns what was evicted."""
    if budget_bytes <= 0:
        return []
    found = entries(roots)
    total = sum(size for _, size, _ in found)
    evicted = []
    now = time.time()
    for entry, size, used in sorted(found, key=lambda e: e[2]):
        if total <= budget_bytes:
            break
        if now - used < keep_recent_s:
            continue  # in use, or just made: never pulled from under a job or a page
        aside = entry.with_name(f".tmp-evicted-{entry.name}-{os.getpid()}-{time.time_ns()}")
        try:
            entry.rename(aside)  # readers stop seeing it in one step
        except OSError:
            continue
        shutil.rmtree(aside, ignore_errors=True)
        total -= size
        evicted.append(entry)
    return evicted
