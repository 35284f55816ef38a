"""Analyses that exist only to exercise the job machinery (loaded via WORKBENCH_EXTRA_ANALYSES)."""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import pandas as pd

from analyses.base import Result, Spec
from analyses.registry import register


@dataclass(frozen=True)
class SleepSpec(Spec):
    KIND = "test_sleep"
    seconds: float = 1.0
    ignore_cancel: bool = False
    crash: bool = False  # die like an OOM kill halfway through


@register(SleepSpec, long=True)
def run_sleep(spec: SleepSpec, ctx) -> Result:
    steps = max(1, int(spec.seconds / 0.05))
    for i in range(steps):
        if spec.crash and i == steps // 2:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.05)
        if not spec.ignore_cancel:
            ctx.progress((i + 1) / steps, f"step {i + 1}/{steps}")
    return Result(SleepSpec.KIND, {"slept": spec.seconds}, {"t": pd.DataFrame({"i": range(3)})}, {})
