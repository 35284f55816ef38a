"""Analyses that exist only to exercise the job machinery (loaded via WORKBENCH_EXTRA_ANALYSES)."""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import pandas as pd

from analyses.base import FitSpec, Result, Spec
from analyses.registry import register


@dataclass(frozen=True)
class SleepSpec(Spec, kind="test_sleep"):
    seconds: float = 1.0
    ignore_cancel: bool = False
    crash: bool = False  # die like an OOM kill halfway through
    die_publishing: bool = False  # SIGKILL after the result is written, before it is renamed into place


@register(SleepSpec, long=True)
def run_sleep(spec: SleepSpec, ctx) -> Result:
    steps = max(1, int(spec.seconds / 0.05))
    for i in range(steps):
        if spec.crash and i == steps // 2:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.05)
        if not spec.ignore_cancel:
            ctx.progress((i + 1) / steps, f"step {i + 1}/{steps}")
    if spec.die_publishing:  # this worker only: the result cache's rename becomes a SIGKILL
        import compute.results

        def killed_before_rename(src, dst):
            os.kill(os.getpid(), signal.SIGKILL)

        compute.results.os.rename = killed_before_rename
    return Result(SleepSpec.KIND, {"slept": spec.seconds}, {"t": pd.DataFrame({"i": range(3)})}, {})


@dataclass(frozen=True)
class FitCounterSpec(FitSpec, kind="test_fit"):
    """A fit whose artifact is a file counting how often it was fitted (a stand-in for an SAE or a basis)."""
    ARTIFACT = "test_fits"
    size: int = 3


@register(FitCounterSpec)
def run_fit(spec: FitCounterSpec, ctx) -> Result:
    folder = ctx.workbench.artifact_folder(spec)
    folder.mkdir(parents=True, exist_ok=True)
    count = folder / "fitted"
    count.write_text(str(int(count.read_text()) + 1 if count.exists() else 1))
    ctx.progress(1.0, "fitted")
    return Result(FitCounterSpec.KIND, {"size": spec.size, "folder": str(folder)})


@dataclass(frozen=True)
class UsesFitSpec(Spec, kind="test_uses_fit"):
    """An analysis that reads a fit's artifact: it names the fit in depends_on() and gets it with ctx.require."""
    size: int = 3

    def fit(self) -> FitCounterSpec:
        return FitCounterSpec(model=self.model, size=self.size)

    def depends_on(self):
        return (self.fit(),)


@register(UsesFitSpec)
def run_uses_fit(spec: UsesFitSpec, ctx) -> Result:
    fitted = ctx.require(spec.fit(), share=(0.0, 0.5))
    return Result(UsesFitSpec.KIND, {"fit_folder": fitted.summary["folder"]})


def slow_square(x: int, seconds: float, pid_folder: str) -> int:
    """A shard for the cluster tests: records which process runs it (so a test can kill it), then works."""
    from pathlib import Path

    Path(pid_folder, f"{x}-{os.getpid()}").write_text("")
    time.sleep(seconds)
    return x * x
