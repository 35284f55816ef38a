"""The result cache: one directory per result key, written atomically.

A result is written into a temporary sibling directory and renamed into place in one step, so a
crash or a cancelled job can leave only a `.tmp-*` directory behind (swept at start-up), never a
half-written result that a later read would trust.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from .disk_budget import touch


class ResultCache:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        return self.root / key

    def get(self, key: str) -> Path | None:
        p = self.path(key)
        if (p / "COMPLETE").exists():
            self.hits += 1
            touch(p)  # for the disk budget's least-recently-used order
            return p
        self.misses += 1
        return None

    def put(self, key: str, write: Callable[[Path], None]) -> Path:
        """Call write(tmpdir) and publish tmpdir as the result for key."""
        final = self.path(key)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=self.root))
        try:
            write(tmp)
            (tmp / "COMPLETE").write_text(str(time.time()))
            try:
                os.rename(tmp, final)
            except OSError:
                # Someone else published the same key meanwhile: results are deterministic, keep theirs.
                if not (final / "COMPLETE").exists():
                    shutil.rmtree(final, ignore_errors=True)
                    os.rename(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return final

    def discard(self, key: str) -> None:
        """A damaged result (a truncated table, a corrupt summary) leaves the cache in one rename, then is removed;
        the next request recomputes it."""
        final = self.path(key)
        aside = self.root / f".tmp-damaged-{key}-{os.getpid()}-{time.time_ns()}"
        try:
            os.rename(final, aside)
        except OSError:
            aside = final
        shutil.rmtree(aside, ignore_errors=True)

    def sweep_partial(self, older_than_s: float = 0) -> int:
        """Remove temporary directories left by crashed writers."""
        n = 0
        now = time.time()
        for p in self.root.glob(".tmp-*"):
            if now - p.stat().st_mtime >= older_than_s:
                shutil.rmtree(p, ignore_errors=True)
                n += 1
        return n
