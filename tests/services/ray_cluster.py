"""A real local Ray cluster for the tests: a head node on loopback (`ray start --head --block`) with its worker
slots, in its own process group, torn down by signalling that group (never `ray stop`, which stops every Ray
process of the user). If the test process dies, the head is told to stop too (PR_SET_PDEATHSIG)."""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compute.cluster import RAY_ENV
from tests.services import free_port



def _stop_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class RayCluster:
    def __init__(self, cpus: int = 2, pythonpath: str | None = None):
        self.folder = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Unix socket paths < 108 bytes
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.cpus = cpus
        self.env = {**os.environ, **RAY_ENV, **({"PYTHONPATH": pythonpath} if pythonpath else {})}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 90) -> "RayCluster":
        ray_cli = Path(sys.executable).parent / "ray"
        log = self.folder / "head.log"
        self.proc = subprocess.Popen(
            [str(ray_cli), "start", "--head", "--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
             f"--port={self.port}", "--include-dashboard=false", f"--num-cpus={self.cpus}",
             f"--temp-dir={self.folder}", f"--object-store-memory={200 * 2**20}"],
            stdout=open(log, "w"), stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
            preexec_fn=_stop_with_parent)
        deadline = time.time() + timeout_s
        while "will now block forever" not in log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("the Ray head did not start:\n" + log.read_text(errors="replace")[-3000:])
            time.sleep(0.1)
        return self

    def worker_pids(self) -> list[int]:
        """Processes of this cluster running a task (Ray titles them ray::<function>)."""
        out = subprocess.run(["ps", "-eo", "pid=,pgid=,args="], capture_output=True, text=True).stdout
        return [int(line.split()[0]) for line in out.splitlines()
                if len(line.split()) > 2 and line.split()[1] == str(self.proc.pid)
                and line.split()[2].startswith("ray::") and "IDLE" not in line]

    def stop(self, timeout_s: float = 15) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        if self.proc is not None:
            try:  # what is left of the group (workers outlive the raylet for a moment)
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)
