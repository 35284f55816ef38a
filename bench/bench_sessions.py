"""Page times with five browser sessions at once (bench/sessions.py's journeys) against the same journeys one
session at a time, on one server in a fresh home; p50 / p95 per journey after a warm-up round, and the server's
memory before and after.

    .venv/bin/python bench/bench_sessions.py [--rounds 5] [--soak-minutes 20] [--out bench/results_sessions.json]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.sessions import JOURNEYS, Prepared, percentile, prepare, run_sessions  # noqa: E402


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _cpu_split(server_pid: int) -> dict[str, float]:
    """CPU seconds so far of the server, of its job workers, and of every Chromium process (where the two
    cores go while five sessions run). Workers that have exited are counted through the server's children
    times; live ones directly."""
    import psutil

    out = {"server": 0.0, "job workers": 0.0, "chromium": 0.0}
    try:
        server = psutil.Process(server_pid)
        t = server.cpu_times()
        out["server"] = t.user + t.system
        out["job workers"] = t.children_user + t.children_system
        for child in server.children(recursive=True):
            try:
                c = child.cpu_times()
                out["job workers"] += c.user + c.system
            except psutil.Error:
                continue
    except psutil.Error:
        pass
    for p in psutil.process_iter(["name", "cpu_times"]):
        if "chrom" in (p.info["name"] or "") and p.info["cpu_times"] is not None:
            out["chromium"] += p.info["cpu_times"].user + p.info["cpu_times"].system
    return out


class ChromiumSampler:
    """Chromium's processes come and go with the sessions: sample each one's CPU time every 0.2 s and keep its
    last reading (what it used until it exited, within one sample)."""

    def __init__(self):
        import threading

        self.last: dict[int, float] = {}
        self.start_values: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        while not self._stop.is_set():
            for p in psutil.process_iter(["name", "cpu_times"]):
                if "chrom" in (p.info["name"] or "") and p.info["cpu_times"] is not None:
                    used = p.info["cpu_times"].user + p.info["cpu_times"].system
                    self.start_values.setdefault(p.pid, used if not self.last else 0.0)
                    self.last[p.pid] = used
            self._stop.wait(0.2)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()

    def seconds(self) -> float:
        return sum(v - self.start_values.get(pid, 0.0) for pid, v in self.last.items())


def serve(home: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "WORKBENCH_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"),
                             "--server.headless", "true", "--server.port", str(port), "--server.address",
                             "127.0.0.1"], cwd=ROOT, env=env, stdout=open(home / "server.log", "w"),
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the server did not start")


def one_at_a_time(url: str, prep: Prepared, rounds: int, chromium: str) -> dict[str, list[float]]:
    import bench.sessions as sessions

    out: dict[str, list[float]] = {}
    for journey in JOURNEYS:
        saved = sessions.JOURNEYS
        sessions.JOURNEYS = (journey,)
        try:
            t = run_sessions(url, prep, rounds, chromium)
        finally:
            sessions.JOURNEYS = saved
        out[journey] = t.steps.get(journey, [])
        if t.errors:
            print("errors:", t.errors, file=sys.stderr)
    return out


def summary(steps: dict[str, list[float]]) -> dict:
    every = [x for v in steps.values() for x in v]
    return {**{j: {"p50": round(percentile(v, 50), 2), "p95": round(percentile(v, 95), 2), "n": len(v)}
               for j, v in steps.items()},
            "all": {"p50": round(percentile(every, 50), 2), "p95": round(percentile(every, 95), 2), "n": len(every)}}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--chromium", default=os.environ.get("BROWSER_PATH") or "/usr/bin/chromium")
    ap.add_argument("--soak-minutes", type=float, default=0.0,
                    help="after the measurement, loop the five journeys this long and record the server's memory")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results_sessions.json")))
    args = ap.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="bench-sessions-"))
    os.environ["WORKBENCH_HOME"] = str(home)
    from analyses.workbench import Workbench, configure_threads

    configure_threads()
    prep = prepare(Workbench())
    proc, url = serve(home)
    try:
        run_sessions(url, prep, 1, args.chromium)  # warm-up: models loaded, caches filled
        rss_before = _rss_mib(proc.pid)
        alone = one_at_a_time(url, prep, args.rounds, args.chromium)
        cpu0 = _cpu_split(proc.pid)
        sampler = ChromiumSampler()
        sampler.start()
        t0 = time.perf_counter()
        together = run_sessions(url, prep, args.rounds, args.chromium)
        wall = time.perf_counter() - t0
        sampler.stop()
        cpu1 = _cpu_split(proc.pid)
        cpu1["chromium"] = cpu0.get("chromium", 0) + sampler.seconds()
        out = {"rounds": args.rounds, "one session at a time": summary(alone),
               "five sessions at once": summary(together.steps), "errors": together.errors,
               "wall_seconds_five_at_once": round(wall, 1), "server_rss_mib": {"before": round(rss_before),
                                                                              "after": round(_rss_mib(proc.pid))},
               "cpu_seconds_five_at_once": {k: round(cpu1.get(k, 0) - cpu0.get(k, 0), 1) for k in cpu1}}
        if args.soak_minutes > 0:  # bounded soak: memory after each loop, errors collected
            soak, errors, end = [], [], time.time() + 60 * args.soak_minutes
            while time.time() < end:
                t = run_sessions(url, prep, 1, args.chromium)
                errors += t.errors
                soak.append(round(_rss_mib(proc.pid)))
            out["soak"] = {"minutes": args.soak_minutes, "loops": len(soak), "server_rss_mib_per_loop": soak,
                           "errors": errors}
    finally:
        proc.terminate()
        proc.wait(20)
    print(json.dumps(out, indent=1))
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
