"""A workbench in a fresh temporary home, as each benchmark starts: nothing cached, threads configured."""
from __future__ import annotations

import os
import tempfile


def fresh_workbench(prefix: str):
    os.environ["WORKBENCH_HOME"] = tempfile.mkdtemp(prefix=prefix)
    from analyses.workbench import Workbench, configure_threads

    configure_threads()
    return Workbench()
